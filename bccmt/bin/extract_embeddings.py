"""Stage 4: embeddings for every utterance of a data dir -> <out>/xvector.{ark,scp}.

  python -m bccmt.bin.extract_embeddings --exp-dir exp/bccmt_tiny --data data/vox1 \\
      --out exp/bccmt_tiny/embeddings/vox1 [--nj 4] [--cmd "run.py"] [--spk-mean]

With --nj N > 1 the utterances are split into N sorted contiguous parts run as N jobs through the
job runner (--cmd, default $cmd or run.py; logs in <out>/log/extract.JOB.log); the parts are then
merged into one sorted xvector.{ark,scp}. The output is checked to hold exactly one embedding per
utterance, and the data dir's utt2spk is copied beside it. --spk-mean also writes the per-speaker
means spk_xvector.{ark,scp} (the AS-norm cohort).
The policy for long/short utterances and the feature checks are described in bccmt.embed.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import subprocess
import sys
from pathlib import Path

from bccmt.embed import (ExtractConfig, ExtractError, check_one_per_utterance, copy_utt2spk,
                         extract_job, feature_source, merge_jobs, speaker_means,
                         write_extract_info)
from bccmt.logging_setup import setup_logging

logger = logging.getLogger("extract_embeddings")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--exp-dir", required=True, help="model exp dir (config.yaml, models/final.pt)")
    p.add_argument("--data", required=True, help="Kaldi data dir (feats.scp or wav.scp)")
    p.add_argument("--out", required=True, help="output dir for xvector.{ark,scp}")
    p.add_argument("--nj", type=int, default=1, help="number of parallel jobs")
    p.add_argument("--cmd", default=os.environ.get("cmd", "run.py"), help="job runner command")
    p.add_argument("--spk-mean", action="store_true", help="also write spk_xvector.{ark,scp}")
    d = ExtractConfig()
    p.add_argument("--max-chunk-frames", type=int, default=d.max_chunk_frames,
                   help="longer utterances are embedded in near-equal chunks, then averaged")
    p.add_argument("--batch-frames", type=int, default=d.batch_frames,
                   help="max frames per batch of equal-length inputs")
    p.add_argument("--length-quantum", type=int, default=d.length_quantum,
                   help="inputs keep their central T - T %% q frames so that many share a length "
                        "and a batch (1 = every frame, batch-1 forwards)")
    p.add_argument("--device", default=d.device, help="torch device, e.g. cpu or cuda:0")
    p.add_argument("--job", type=int, default=None, help=argparse.SUPPRESS)  # worker mode
    p.add_argument("--num-jobs", type=int, default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    setup_logging()
    if a.length_quantum < 1:
        p.error(f"--length-quantum must be >= 1, got {a.length_quantum}")
    cfg = ExtractConfig(max_chunk_frames=a.max_chunk_frames, batch_frames=a.batch_frames,
                        length_quantum=a.length_quantum, device=a.device)
    try:
        if a.job is not None:
            extract_job(a.exp_dir, a.data, a.out, a.job, a.num_jobs or 1, cfg)
            return 0
        logger.info("%s", " ".join(shlex.quote(x) for x in sys.argv))
        if a.nj < 1:
            raise ExtractError(f"--nj must be >= 1, got {a.nj}")
        if a.nj == 1:
            extract_job(a.exp_dir, a.data, a.out, 1, 1, cfg)
        else:
            log = Path(a.out) / "log" / "extract.JOB.log"
            cmd = shlex.split(a.cmd) + [
                f"JOB=1:{a.nj}", str(log), sys.executable, "-m", "bccmt.bin.extract_embeddings",
                "--exp-dir", str(a.exp_dir), "--data", str(a.data), "--out", str(a.out),
                "--max-chunk-frames", str(a.max_chunk_frames),
                "--batch-frames", str(a.batch_frames), "--length-quantum", str(a.length_quantum),
                "--device", a.device,
                "--job", "JOB", "--num-jobs", str(a.nj)]
            if subprocess.run(cmd).returncode != 0:
                raise ExtractError(f"extraction jobs failed; see {log}")
            merge_jobs(a.out, a.nj)
        scp = Path(a.out) / "xvector.scp"
        n = check_one_per_utterance(scp, feature_source(a.exp_dir, a.data))
        copy_utt2spk(a.data, a.out)
        if a.spk_mean:
            ns = speaker_means(scp, Path(a.data) / "utt2spk", a.out)
            logger.info("wrote %d speaker means to %s", ns, Path(a.out) / "spk_xvector.scp")
        write_extract_info(a.out, a.exp_dir, a.data, cfg, n)
        logger.info("%s: %d embeddings, one per utterance of %s", scp, n, a.data)
    except ExtractError as e:
        logger.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
