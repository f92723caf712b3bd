"""utils/parse_options.sh: option setting, errors, booleans, generated --help, positional args."""
import subprocess
import textwrap
from pathlib import Path

import pytest

UTILS = Path(__file__).resolve().parents[1] / "utils"

SCRIPT = textwrap.dedent("""\
    #!/usr/bin/env bash
    set -euo pipefail
    nj=4                 # number of parallel jobs
    feat_type="fbank"    # feature kind: "fbank" or "mfcc" # not a 2nd comment
    quick=false          # run the quick configuration
    empty_opt=
    usage="Usage: $0 [options] <data-dir> <out-dir>\\n e.g.: $0 --nj 2 data/vox1 exp/x"
    . utils/parse_options.sh
    after_parse=1        # not an option: after the parse_options line
    echo "nj=$nj feat_type=$feat_type quick=$quick empty_opt=$empty_opt"
    echo "nargs=$#"
    for a in "$@"; do echo "arg=$a"; done
    """)


@pytest.fixture
def script(tmp_path):
    (tmp_path / "utils").symlink_to(UTILS)
    path = tmp_path / "prog.sh"
    path.write_text(SCRIPT)

    def run(*args):
        return subprocess.run(["bash", "prog.sh", *args], cwd=tmp_path, capture_output=True,
                              text=True)

    return run


def test_defaults_and_positional(script):
    r = script("data/a", "exp/b")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["nj=4 feat_type=fbank quick=false empty_opt=", "nargs=2",
                                     "arg=data/a", "arg=exp/b"]


def test_space_and_equals_forms_with_hyphens(script):
    r = script("--nj", "8", "--feat-type=mfcc", "--quick", "true", "--empty-opt", "a b", "x")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[:3] == ["nj=8 feat_type=mfcc quick=true empty_opt=a b", "nargs=1",
                                         "arg=x"]


def test_underscore_form_and_value_with_equals(script):
    r = script("--feat_type", "k=v", "x")
    assert r.returncode == 0, r.stderr
    assert "feat_type=k=v " in r.stdout


def test_stops_at_first_positional_and_double_dash(script):
    r = script("a", "--nj", "3")
    assert r.stdout.splitlines()[1:] == ["nargs=3", "arg=a", "arg=--nj", "arg=3"]
    r = script("--nj", "2", "--", "--quick", "b")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["nj=2 feat_type=fbank quick=false empty_opt=", "nargs=2",
                                     "arg=--quick", "arg=b"]


def test_unknown_option_is_an_error(script):
    r = script("--num-jobs", "3", "x")
    assert r.returncode == 1
    assert "unknown option --num-jobs" in r.stderr
    assert r.stdout == ""
    # A variable defined after the parse_options line is not an option either.
    assert "unknown option --after-parse" in script("--after-parse", "2").stderr


def test_boolean_accepts_only_true_false(script):
    r = script("--quick", "yes", "x")
    assert r.returncode == 1
    assert "--quick expects true or false, got 'yes'" in r.stderr
    assert script("--quick=false", "x").returncode == 0


def test_missing_value(script):
    r = script("--nj")
    assert r.returncode == 1
    assert "option --nj needs a value" in r.stderr


def test_help_is_generated_from_option_lines(script):
    r = script("--nj", "9", "--help")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "Usage: prog.sh [options] <data-dir> <out-dir>"
    assert lines[1] == " e.g.: prog.sh --nj 2 data/vox1 exp/x"
    opts = lines[lines.index("Options:") + 1:]
    assert opts == [
        "  --nj (4) number of parallel jobs",
        '  --feat-type (fbank) feature kind: "fbank" or "mfcc" # not a 2nd comment',
        "  --quick (false) run the quick configuration",
        "  --empty-opt ()",
    ]
    assert script("-h").stdout == r.stdout


def test_config_file_then_command_line_overrides(script, tmp_path):
    (tmp_path / "my.conf").write_text("nj=7\nfeat_type=mfcc\n")
    r = script("--config", "my.conf", "--nj", "2", "x")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "nj=2 feat_type=mfcc quick=false empty_opt="
    r = script("--config", "nope.conf", "x")
    assert r.returncode == 1 and "cannot read config file 'nope.conf'" in r.stderr


def test_script_with_own_config_variable_gets_plain_option(tmp_path):
    (tmp_path / "utils").symlink_to(UTILS)
    (tmp_path / "p.sh").write_text("set -euo pipefail\nconfig=conf/a.yaml  # YAML config\n"
                                   "nj=1\n. utils/parse_options.sh\necho \"$config $nj $*\"\n")
    r = subprocess.run(["bash", "p.sh", "--config", "conf/b.yaml", "--nj", "3", "x"], cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "conf/b.yaml 3 x\n"


def test_no_helper_variables_leak(tmp_path):
    (tmp_path / "utils").symlink_to(UTILS)
    (tmp_path / "p.sh").write_text("set -euo pipefail\nnj=1\n. utils/parse_options.sh\n"
                                   "compgen -v _po_ || true\ndeclare -F _po_die || true\n")
    r = subprocess.run(["bash", "p.sh", "--nj", "2"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
