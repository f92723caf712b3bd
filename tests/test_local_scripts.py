"""The shared contract of the local/*.sh scripts: one preamble, and --nj checked before any work."""

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "egs" / "voxceleb"
# script -> positional arguments it needs (none of them exist: the --nj check comes first)
SCRIPTS = {
    "augment_data_dir.sh": ["nodir/src"],
    "extract_embeddings.sh": ["noexp", "nodata", "noout"],
    "kd_study.sh": ["noteacher", "notrain", "nobackend", "noeval", "nostudy"],
    "make_fbank.sh": ["nodata", "nolog", "nofbank"],
    "make_mini_corpus.sh": ["noout"],
    "prepare_voxceleb.sh": ["nodata"],
}


def test_every_script_with_nj_is_listed():
    with_nj = {p.name for p in (REPO / "local").glob("*.sh")
               if "\nnj=" in p.read_text()}
    assert with_nj == set(SCRIPTS)


@pytest.mark.parametrize("script", sorted(SCRIPTS))
@pytest.mark.parametrize("nj", ["0", "two"])
def test_bad_nj_is_refused_first(script, nj, tmp_path):
    env = dict(os.environ, PATH=f"{REPO / 'utils'}:{os.environ['PATH']}")
    r = subprocess.run(["bash", f"local/{script}", "--nj", nj, *SCRIPTS[script]], cwd=RECIPE,
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert f"local/{script}: --nj must be a positive integer, got '{nj}'" in r.stderr
    assert r.stdout == ""
    assert r.stderr.startswith(f"local/{script} --nj {nj} ")  # the command line, on stderr


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "local").glob("*.sh")))
def test_one_preamble(script):
    text = (REPO / "local" / script).read_text()
    assert "set -euo pipefail\nexport LC_ALL=C\n" in text
    assert '\necho "$0 $*" >&2\n. "${0%/*}/../utils/parse_options.sh"\n' in text
    assert "python -c" not in text
