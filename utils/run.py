#!/usr/bin/env python3
"""Parallel job runner with Kaldi run.pl semantics, locally or on Slurm.

Usage: run.py [options] [JOB=1:N] <log-file> <command> [<args>...]
 e.g.: run.py --max-jobs-run 2 JOB=1:4 exp/log/fbank.JOB.log \\
           python -m bccmt.bin.x --part JOB data/split4/JOB
       run.py exp/log/one.log "sort a | uniq > b"
The string JOB (or whatever name precedes =) in the log name and the command is replaced by each
job index; JOB=3:5 runs jobs 3, 4, 5. The command runs under `bash -c`: a single command argument
is taken as a shell command line (pipes and redirections work); several arguments are joined, those
containing whitespace quoted, others taken as is (so an escaped \\| acts as a pipe, as in Kaldi).
Each job's stdout+stderr go to its log, framed by "# <command>", "# Started at <date>",
"# Accounting: time=<s> threads=<n>" and "# Ended (code <rc>) at <date>".
Exit status 0 only if every job succeeded; otherwise the failed logs are named.
Options:
  --backend local|slurm   where to run (default local); the recipe picks it in cmd.sh
  --max-jobs-run N        at most N jobs at once (default: all)
  --slurm-opts "..."      extra sbatch options, e.g. "-p gpu --time 2:00:00"
  --num-threads N         threads per job (slurm: --cpus-per-task; recorded in the log)
  --mem M                 memory per job (slurm: --mem; ignored locally)
  --gpu N                 GPUs per job (slurm: --gres=gpu:N; ignored locally)
"""
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

PROG = "run.py"
OPTIONS = {"--backend": "local", "--max-jobs-run": "0", "--slurm-opts": "", "--num-threads": "1",
           "--mem": "", "--gpu": "0"}


class UsageError(Exception):
    pass


def parse_args(argv):
    """-> (opts dict, var name or None, first, last, log template, command template)."""
    opts = {k[2:].replace("-", "_"): v for k, v in OPTIONS.items()}
    i = 0
    while i < len(argv) and argv[i].startswith("--"):
        name, eq, value = argv[i].partition("=")
        if name in ("--help", "-h"):
            raise UsageError("")
        if name not in OPTIONS:
            raise UsageError(f"unknown option {name}")
        if not eq:
            if i + 1 >= len(argv):
                raise UsageError(f"option {name} needs a value")
            i += 1
            value = argv[i]
        opts[name[2:].replace("-", "_")] = value
        i += 1
    if opts["backend"] not in ("local", "slurm"):
        raise UsageError(f"--backend must be local or slurm, got '{opts['backend']}'")
    for key in ("max_jobs_run", "num_threads", "gpu"):
        if not opts[key].isdigit():
            raise UsageError(f"--{key.replace('_', '-')} must be a non-negative integer")
    rest = argv[i:]
    var, first, last = None, 1, 1
    if rest:
        m = re.fullmatch(r"([A-Za-z_]\w*)=(\d+)(?::(\d+))?", rest[0])
        if m:
            var, first = m.group(1), int(m.group(2))
            last = int(m.group(3)) if m.group(3) is not None else first
            rest = rest[1:]
            if last < first:
                raise UsageError(f"empty job range {var}={first}:{last}")
    if len(rest) < 2:
        raise UsageError("expected a log file and a command")
    log, cmd = rest[0], rest[1:]
    if var is None and "JOB" in log:
        raise UsageError(f"log name {log} contains JOB but no JOB=1:N range was given")
    if var is not None and last > first and var not in log:
        raise UsageError(f"{last - first + 1} jobs would all write to the one log {log}; "
                         f"put {var} in the log name")
    return opts, var, first, last, log, command_line(cmd)


def command_line(args):
    """One argument: a shell command line as is. Several: joined, quoting those that need it."""
    if len(args) == 1:
        return args[0]
    return " ".join(a if re.fullmatch(r"\S+", a) else shlex.quote(a) for a in args)


def substitute(text, var, job):
    return text if var is None else text.replace(var, str(job))


def run_local(jobs, max_jobs, threads):
    """jobs: [(job, log path, command)] -> {job: exit code}. Ctrl-C / SIGTERM kill all children."""
    pending, running, codes = list(jobs), {}, {}
    max_jobs = max_jobs or len(jobs)
    try:
        while pending or running:
            while pending and len(running) < max_jobs:
                job, log, cmd = pending.pop(0)
                Path(log).parent.mkdir(parents=True, exist_ok=True)
                with open(log, "w", encoding="utf-8") as f:
                    f.write(f"# {cmd}\n# Started at {time.ctime()}\n")
                out = open(log, "a", encoding="utf-8")
                proc = subprocess.Popen(["bash", "-c", cmd], stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
                running[job] = (proc, out, log, time.time())
            for job, (proc, out, log, start) in list(running.items()):
                rc = proc.poll()
                if rc is None:
                    continue
                out.close()
                with open(log, "a", encoding="utf-8") as f:
                    seconds = int(round(time.time() - start))
                    f.write(f"# Accounting: time={seconds} threads={threads}\n"
                            f"# Ended (code {rc}) at {time.ctime()}\n")
                codes[job] = rc
                del running[job]
            time.sleep(0.02)
    finally:
        for proc, out, log, _ in running.values():
            _kill_group(proc)
            out.close()
            with open(log, "a", encoding="utf-8") as f:
                f.write(f"# Ended (killed by {PROG}) at {time.ctime()}\n")
    return codes


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


SLURM_SCRIPT = """#!/usr/bin/env bash
# Written by {prog}; runs one task of a Slurm job array. SLURM_ARRAY_TASK_ID is the job index.
cd {cwd}
job=${{SLURM_ARRAY_TASK_ID:?not run as a Slurm array task}}
case "$job" in
{cases}
  *) echo "{prog}: no job $job in this array" >&2; exit 1 ;;
esac
mkdir -p "$(dirname "$log")"
printf '# %s\\n# Started at %s\\n' "$cmd" "$(date)" > "$log"
start=$(date +%s)
bash -c "$cmd" < /dev/null >> "$log" 2>&1
rc=$?
printf '# Accounting: time=%s threads={threads}\\n# Ended (code %s) at %s\\n' \\
  "$(( $(date +%s) - start ))" "$rc" "$(date)" >> "$log"
exit $rc
"""


def run_slurm(jobs, opts, log_template):
    """Submits one `sbatch --array --wait`; -> {job: exit code read from its log}."""
    logdir = Path(substitute(log_template, "JOB", "")).parent
    qdir = (logdir / "q").resolve()
    qdir.mkdir(parents=True, exist_ok=True)
    base = re.sub(r"[^\w.-]", "_", Path(log_template).name.replace("JOB", ""))
    base = re.sub(r"\.{2,}", ".", base).strip("._") or "job"
    cases = "\n".join(
        f"  {job}) log={shlex.quote(str(Path(log).resolve()))}; cmd={shlex.quote(cmd)} ;;"
        for job, log, cmd in jobs)
    script = qdir / f"{base}.sh"
    script.write_text(SLURM_SCRIPT.format(prog=PROG, cwd=shlex.quote(os.getcwd()), cases=cases,
                                          threads=opts["num_threads"]), encoding="utf-8")
    script.chmod(0o755)
    for _, log, _ in jobs:  # stale logs must not count as finished
        Path(log).unlink(missing_ok=True)
    array = f"{jobs[0][0]}-{jobs[-1][0]}"
    if int(opts["max_jobs_run"]):
        array += f"%{opts['max_jobs_run']}"
    cmd = ["sbatch", "--parsable", "--wait", f"--array={array}", f"--job-name={base}",
           f"--output={qdir / base}.%a.out", f"--cpus-per-task={opts['num_threads']}"]
    cmd += [f"--mem={opts['mem']}"] if opts["mem"] else []
    cmd += [f"--gres=gpu:{opts['gpu']}"] if int(opts["gpu"]) else []
    cmd += shlex.split(opts["slurm_opts"]) + [str(script)]
    job_id = None
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    except FileNotFoundError:
        raise UsageError("--backend slurm needs sbatch on PATH") from None
    try:
        for line in proc.stdout:
            if job_id is None and line.strip():
                job_id = line.strip().split(";")[0]
        rc = proc.wait()
    except BaseException:
        proc.terminate()
        if job_id:
            subprocess.run(["scancel", job_id], check=False)
        raise
    if rc != 0:
        print(f"{PROG}: sbatch exited with code {rc} (job {job_id}; slurm output in {qdir})",
              file=sys.stderr)
    return {job: _exit_code_in_log(log) for job, log, _ in jobs}


def _exit_code_in_log(log):
    try:
        text = Path(log).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return -1
    codes = re.findall(r"^# Ended \(code (\d+)\)", text, flags=re.M)
    return int(codes[-1]) if codes else -1


def main(argv):
    if argv[:1] == ["-h"]:
        argv = ["--help"]
    try:
        opts, var, first, last, log, cmd = parse_args(argv)
    except UsageError as e:
        if not str(e):
            print(__doc__)
            return 0
        print(f"{PROG}: {e} (see {PROG} --help)", file=sys.stderr)
        return 1
    jobs = [(j, substitute(log, var, j), substitute(cmd, var, j)) for j in range(first, last + 1)]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        if opts["backend"] == "local":
            codes = run_local(jobs, int(opts["max_jobs_run"]), opts["num_threads"])
        else:
            codes = run_slurm(jobs, opts, log if var is None else log.replace(var, "JOB"))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; jobs killed", file=sys.stderr)
        return 130
    except UsageError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    failed = [(j, lg) for j, lg, _ in jobs if codes.get(j) != 0]
    if not failed:
        return 0
    shown = " ".join(lg for _, lg in failed[:5]) + (" ..." if len(failed) > 5 else "")
    if len(jobs) == 1:
        print(f"{PROG}: job failed (code {codes.get(jobs[0][0])}), see {shown}", file=sys.stderr)
    else:
        print(f"{PROG}: {len(failed)} / {len(jobs)} failed, see {shown}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
