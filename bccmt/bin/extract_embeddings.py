"""Stage 4: embeddings for every utterance of a data dir -> <out>/xvector.{ark,scp}.

  python -m bccmt.bin.extract_embeddings --exp-dir exp/bccmt_tiny --data data/vox1 \\
      --out exp/bccmt_tiny/embeddings/vox1 [--spk-mean]

embeds every utterance in this one process and finishes the dir (below). The parallel form is
local/extract_embeddings.sh, which runs the three steps of a Kaldi job:
  --list-utts                    print the utterances to embed (sorted), for the shell to split
  --utt-list <part> --part JOB   one job: embed the listed utterances -> xvector.JOB.{ark,scp}
  --merge N                      join xvector.{1..N}.* into xvector.{ark,scp} and finish the dir
Finishing checks that there is exactly one embedding per utterance, copies the data dir's utt2spk
beside it, writes extract.yaml and, with --spk-mean, the per-speaker means spk_xvector.{ark,scp}
(the AS-norm cohort). The policy for long/short utterances and the feature checks are described
in bccmt.embed.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

from bccmt.embed import (ExtractConfig, ExtractError, check_one_per_utterance, copy_utt2spk,
                         extract_job, feature_source, merge_jobs, speaker_means,
                         write_extract_info)
from bccmt.exp import EmbeddingsDir
from bccmt.logging_setup import setup_logging

logger = logging.getLogger("extract_embeddings")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--exp-dir", required=True, help="model exp dir (config.yaml, models/final.pt)")
    p.add_argument("--data", required=True, help="Kaldi data dir (feats.scp or wav.scp)")
    p.add_argument("--out", help="output dir for xvector.{ark,scp} (all but --list-utts)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--list-utts", action="store_true", help="print the utterances to embed")
    mode.add_argument("--utt-list", help="one job: embed the utterances listed here (needs --part)")
    mode.add_argument("--merge", type=int, metavar="N", help="join parts 1..N and finish the dir")
    p.add_argument("--part", type=int, help="job number of --utt-list: writes xvector.PART.*")
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
    return p


def _read_utt_list(path) -> list:
    from bccmt.io.tables import TableError, read_ids

    try:
        return read_ids(path, what="utterance id")
    except TableError as e:
        raise ExtractError(str(e)) from None


def _finish(a, cfg: ExtractConfig) -> None:
    out = EmbeddingsDir(a.out)
    scp = out.xvector_scp
    n = check_one_per_utterance(scp, feature_source(a.exp_dir, a.data))
    copy_utt2spk(a.data, a.out)
    if a.spk_mean:
        ns = speaker_means(scp, Path(a.data) / "utt2spk", a.out)
        logger.info("wrote %d speaker means to %s", ns, out.spk_xvector_scp)
    write_extract_info(a.out, a.exp_dir, a.data, cfg, n)
    logger.info("%s: %d embeddings, one per utterance of %s", scp, n, a.data)


def main(argv=None) -> int:
    p = _parser()
    a = p.parse_args(argv)
    setup_logging()
    if a.length_quantum < 1:
        p.error(f"--length-quantum must be >= 1, got {a.length_quantum}")
    if not a.list_utts and not a.out:
        p.error("--out is required")
    if (a.utt_list is None) != (a.part is None):
        p.error("--utt-list and --part go together")
    if a.merge is not None and a.merge < 1:
        p.error(f"--merge must be >= 1, got {a.merge}")
    cfg = ExtractConfig(max_chunk_frames=a.max_chunk_frames, batch_frames=a.batch_frames,
                        length_quantum=a.length_quantum, device=a.device)
    try:
        if a.list_utts:
            for u in feature_source(a.exp_dir, a.data).utterances():
                print(u)
            return 0
        logger.info("%s", " ".join(shlex.quote(x) for x in sys.argv))
        if a.utt_list is not None:
            extract_job(a.exp_dir, a.data, a.out, _read_utt_list(a.utt_list), a.part, cfg)
            return 0
        if a.merge is not None:
            merge_jobs(a.out, a.merge)
        else:
            extract_job(a.exp_dir, a.data, a.out, cfg=cfg)
        _finish(a, cfg)
    except ExtractError as e:
        logger.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
