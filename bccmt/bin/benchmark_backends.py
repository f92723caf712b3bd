"""Benchmark of the scoring backends and metrics on synthetic embeddings; prints a table.

  python -m bccmt.bin.benchmark_backends [--repeats 3] [--scale 1.0] [--dim 256]

Rows (sizes at --scale 1):
  cosine+metrics  37,720 trials over 4,874 embeddings (the size of Vox1-O)      target < 2 s
  asnorm          the same trials, cohort 5,994 speaker means, top-N 300
  plda train      100,000 x 128 embeddings of 1,000 speakers, LDA off, 10 EM iterations
                                                                                target < 60 s
  plda score      the Vox1-O-sized trials with that model
  metrics 10M     EER + minDCF(0.01, 0.001) over 10,000,000 scores; peak traced memory shows
                  it is linear (an N x N method would need ~10^14 bytes)
Times are the median of --repeats runs (wall clock, this process's thread settings).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import tracemalloc

import numpy as np

from bccmt.backend import asnorm_scores, cosine_scores
from bccmt.backend.plda import train_plda_backend
from bccmt.metrics import compute_metrics


def _timed(fn, repeats: int):
    times, peak, out = [], 0, None
    for _ in range(repeats):
        tracemalloc.start()
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        peak = max(peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    return statistics.median(times), peak / 2**20, out


def _speakers(rng, n_spk, n_utt, dim):
    centres = rng.normal(size=(n_spk, dim)).astype(np.float32)
    lab = np.repeat(np.arange(n_spk), n_utt)
    x = centres[lab] + 1.5 * rng.normal(size=(lab.size, dim)).astype(np.float32)
    return x, lab


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--scale", type=float, default=1.0, help="multiply every size (quick runs)")
    p.add_argument("--dim", type=int, default=256, help="embedding dim for the trial rows")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    rng = np.random.default_rng(a.seed)
    sc = lambda n: max(2, int(round(n * a.scale)))  # noqa: E731

    n_emb, n_trials, n_cohort = sc(4874), sc(37720), sc(5994)
    emb, spk = _speakers(rng, sc(40), n_emb // sc(40) + 1, a.dim)
    emb, spk = emb[:n_emb], spk[:n_emb]
    e = rng.integers(0, n_emb, n_trials)
    t = rng.integers(0, n_emb, n_trials)
    tar = rng.random(n_trials) < 0.5  # make half the trials same-speaker pairs
    same = np.flatnonzero(tar)
    t[same] = [rng.choice(np.flatnonzero(spk == spk[i])) for i in e[same]]
    labels = spk[e] == spk[t]
    mean = rng.normal(size=a.dim).astype(np.float32) * 0.1
    cohort, _ = _speakers(rng, n_cohort, 1, a.dim)

    rows = []
    sec, mb, m = _timed(lambda: compute_metrics(cosine_scores(emb, e, t, mean), labels), a.repeats)
    rows.append(("cosine+metrics", f"{n_trials} trials, {n_emb} x {a.dim}", sec, mb,
                 "< 2 s", f"EER {m['eer']:.2f}%"))
    sec, mb, _ = _timed(lambda: asnorm_scores(emb, e, t, mean, cohort, 300), a.repeats)
    rows.append(("asnorm", f"same + cohort {n_cohort}, top-300", sec, mb, "", ""))

    x, lab = _speakers(rng, sc(1000), 100, 128)
    sec, mb, backend = _timed(lambda: train_plda_backend(x, lab, lda_dim=None, num_iters=10),
                              max(1, min(a.repeats, 2)))
    rows.append(("plda train", f"{x.shape[0]} x 128, {sc(1000)} spk, 10 iters", sec, mb,
                 "< 60 s", ""))
    ev, ev_spk = _speakers(rng, sc(40), n_emb // sc(40) + 1, 128)
    ev = ev[:n_emb]
    sec, mb, s = _timed(lambda: backend.score(ev, e, t), a.repeats)
    rows.append(("plda score", f"{n_trials} trials", sec, mb, "",
                 f"EER {compute_metrics(s, ev_spk[:n_emb][e] == ev_spk[:n_emb][t])['eer']:.2f}%"))
    del x, lab

    n_big = sc(10_000_000)
    big_lab = rng.random(n_big) < 0.01
    big = rng.normal(size=n_big) + 2.0 * big_lab
    sec, mb, m = _timed(lambda: compute_metrics(big, big_lab), max(1, min(a.repeats, 2)))
    in_mb = (big.nbytes + big_lab.nbytes) / 2**20
    rows.append(("metrics 10M", f"{n_big} scores (inputs {in_mb:.0f} MB)", sec, mb,
                 "linear memory", f"EER {m['eer']:.2f}%"))

    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, numpy {np.__version__},"
          f" python {platform.python_version()}; median of {a.repeats} (PLDA/10M: up to 2)")
    print(f"| {'task':<15} | {'size':<38} | {'time (s)':>8} | {'peak MB':>8} | {'target':<13} "
          f"| note |")
    print(f"|{'-' * 17}|{'-' * 40}|{'-' * 10}|{'-' * 10}|{'-' * 15}|------|")
    for name, size, sec, mb, target, note in rows:
        print(f"| {name:<15} | {size:<38} | {sec:8.3f} | {mb:8.1f} | {target:<13} | {note} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
