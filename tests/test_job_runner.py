"""utils/run.py: Kaldi run.pl semantics locally, and the Slurm backend against a fake sbatch."""
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parents[1] / "utils" / "run.py"

FAKE_SBATCH = textwrap.dedent("""\
    #!/usr/bin/env bash
    # Fake sbatch: records its arguments, runs the array tasks here, one after another.
    echo "$@" > "$FAKE_SBATCH_ARGS"
    array=""
    for a in "$@"; do case "$a" in --array=*) array=${a#--array=} ;; esac; done
    script=${!#}
    range=${array%%%*}
    echo 4242
    rc=0
    for ((t = ${range%-*}; t <= ${range#*-}; t++)); do
      SLURM_ARRAY_TASK_ID=$t bash "$script" > /dev/null 2>&1 || rc=1
    done
    exit $rc
    """)


def run(*args, cwd, env=None, **kw):
    return subprocess.run([sys.executable, str(RUN), *args], cwd=cwd, capture_output=True,
                          text=True, env=env, **kw)


def test_all_succeed_log_format(tmp_path):
    r = run("JOB=1:3", "log/x.JOB.log", "echo", "hello", "JOB", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for job in (1, 2, 3):
        lines = (tmp_path / f"log/x.{job}.log").read_text().splitlines()
        assert lines[0] == f"# echo hello {job}"
        assert lines[1].startswith("# Started at ")
        assert lines[2] == f"hello {job}"
        assert re.fullmatch(r"# Accounting: time=\d+ threads=1", lines[3])
        assert lines[4].startswith("# Ended (code 0) at ")


def test_one_fails_names_its_log(tmp_path):
    r = run("JOB=1:4", "log/x.JOB.log", "echo out; echo err >&2; [ JOB -ne 3 ]", cwd=tmp_path)
    assert r.returncode != 0
    assert r.stderr.strip() == "run.py: 1 / 4 failed, see log/x.3.log"
    text = (tmp_path / "log/x.3.log").read_text()
    assert "out\nerr\n" in text and "# Ended (code 1) at" in text
    assert "# Ended (code 0) at" in (tmp_path / "log/x.4.log").read_text()


def test_single_job_form_and_shell_command_line(tmp_path):
    r = run("one.log", "printf 'b\\na\\nb\\n' | sort -u > out.txt", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out.txt").read_text() == "a\nb\n"
    r = run("two.log", "exit 3", cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip() == "run.py: job failed (code 3), see two.log"


def test_job_substitution_range_and_quoting(tmp_path):
    r = run("JOB=3:5", "log/a.JOB.log", "echo", "x JOB  y", "part=JOB", "|", "cat", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "log").iterdir()) == ["a.3.log", "a.4.log", "a.5.log"]
    lines = (tmp_path / "log/a.4.log").read_text().splitlines()
    assert lines[0] == "# echo 'x 4  y' part=4 | cat"
    assert lines[2] == "x 4  y part=4"
    r = run("--max-jobs-run=1", "SPLIT=1:2", "split/SPLIT/log", "echo SPLIT > split/SPLIT/out",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "split/2/out").read_text() == "2\n"


# Each job enters, records how many jobs are inside at once, then waits until `need` jobs have
# entered (or gives up after 10 s), and leaves.
CONCURRENCY = ("mkdir -p in; touch in/JOB; ls in | wc -l >> counts; "
               "for i in $(seq 100); do [ $(ls in | wc -l) -ge {need} ] && break; sleep 0.1; done; "
               "sleep 0.2; rm in/JOB")


def test_max_jobs_run_limits_concurrency(tmp_path):
    r = run("--max-jobs-run", "2", "JOB=1:4", "log/c.JOB.log", CONCURRENCY.format(need=2),
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    counts = [int(c) for c in (tmp_path / "counts").read_text().split()]
    assert len(counts) == 4 and max(counts) <= 2


def test_default_runs_all_jobs_at_once(tmp_path):
    start = time.time()
    r = run("JOB=1:4", "log/c.JOB.log", CONCURRENCY.format(need=4), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert time.time() - start < 8  # the jobs met: all four were running together


def test_usage_errors(tmp_path):
    r = run("--nope", "1", "JOB=1:2", "l.JOB.log", "true", cwd=tmp_path)
    assert r.returncode == 1 and "unknown option --nope" in r.stderr
    r = run("l.JOB.log", "true", cwd=tmp_path)
    assert r.returncode == 1 and "contains JOB but no JOB=1:N range" in r.stderr
    r = run("JOB=1:2", "l.log", "true", cwd=tmp_path)
    assert r.returncode == 1 and "2 jobs would all write to the one log l.log" in r.stderr
    r = run("--backend", "pbs", "l.log", "true", cwd=tmp_path)
    assert r.returncode == 1 and "--backend must be local or slurm" in r.stderr
    assert run("--help", cwd=tmp_path).stdout.startswith("Parallel job runner")


def test_interrupt_kills_children(tmp_path):
    proc = subprocess.Popen([sys.executable, str(RUN), "JOB=1:2", "log/s.JOB.log",
                             "echo $$ > pid.JOB; sleep 60"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # a shell's background job inherits SIGINT ignored; run.py must see it
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    pids = []
    for _ in range(200):
        if all((tmp_path / f"pid.{j}").is_file() and (tmp_path / f"pid.{j}").read_text().strip()
               for j in (1, 2)):
            pids = [int((tmp_path / f"pid.{j}").read_text()) for j in (1, 2)]
            break
        time.sleep(0.05)
    assert pids, "jobs did not start"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130 and "interrupted" in err
    for pid in pids:  # gone, or a zombie waiting for its new parent to reap it (dead either way)
        assert _dead_within(pid, 10.0), f"job process {pid} still runs after the interrupt"
    assert "killed by run.py" in (tmp_path / "log/s.1.log").read_text()


def _dead_within(pid: int, seconds: float) -> bool:
    """True once pid no longer exists or is a zombie (polled: reaping takes a moment on a loaded
    machine)."""
    end = time.time() + seconds
    while True:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        if time.time() > end:
            return False
        time.sleep(0.05)


@pytest.fixture
def fake_slurm(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "sbatch").write_text(FAKE_SBATCH)
    (bindir / "sbatch").chmod(0o755)
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}",
               FAKE_SBATCH_ARGS=str(tmp_path / "sbatch.args"))
    return env


def test_slurm_backend_success(tmp_path, fake_slurm):
    work = tmp_path / "w"
    work.mkdir()
    r = run("--backend", "slurm", "--slurm-opts", "-p gpu --time 1:00:00", "--max-jobs-run", "2",
            "JOB=2:4", "exp/log/s.JOB.log", "echo task JOB | tr a-z A-Z", cwd=work, env=fake_slurm)
    assert r.returncode == 0, r.stderr
    args = (tmp_path / "sbatch.args").read_text().split()
    assert "--wait" in args and "--array=2-4%2" in args
    assert args[args.index("-p") + 1] == "gpu" and args[args.index("--time") + 1] == "1:00:00"
    assert args[-1] == str(work / "exp/log/q/s.log.sh")
    assert f"--output={work}/exp/log/q/s.log.%a.out" in args
    lines = (work / "exp/log/s.3.log").read_text().splitlines()
    assert lines[0] == "# echo task 3 | tr a-z A-Z"
    assert lines[2] == "TASK 3"
    assert lines[-1].startswith("# Ended (code 0) at ")
    assert re.fullmatch(r"# Accounting: time=\d+ threads=1", lines[-2])


def test_slurm_backend_failure_names_log(tmp_path, fake_slurm):
    r = run("--backend=slurm", "JOB=1:3", "log/f.JOB.log", "[ JOB != 2 ]", cwd=tmp_path,
            env=fake_slurm)
    assert r.returncode == 1
    assert "run.py: 1 / 3 failed, see log/f.2.log" in r.stderr
    assert "# Ended (code 1) at" in (tmp_path / "log/f.2.log").read_text()
    assert "--array=1-3" in (tmp_path / "sbatch.args").read_text().split()
