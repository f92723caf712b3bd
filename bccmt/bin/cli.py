"""bccmt: speaker embeddings and verification with an exported model (onnxruntime; no torch).

  bccmt embed  --model DIR a.wav b.flac c.m4a [--out emb.npy]      (N, D) .npy, rows in order
  bccmt embed  --model DIR a.wav ... --out-dir D                   D/xvector.{ark,scp}
  bccmt embed  --model DIR --wav-scp data/x/wav.scp --out-dir D    a whole data dir
  bccmt verify --model DIR ENROLL.wav [ENROLL2.wav ...] TEST.wav   score, threshold, decision
  bccmt score  --model DIR --trials T --wav-scp S [--out F]        score file (+ EER with labels)

DIR is an export dir (exp/<m>/export, from python -m bccmt.bin.export). Audio: wav, flac or m4a;
other sample rates are resampled to the model's and several channels averaged (logged). Scoring
is the recipe's cosine backend with the training mean, and the threshold comes from the recipe's
results on the trial list named in DIR/metadata.json (--threshold eer|mindcf|<number>).
"""

from __future__ import annotations

import argparse
import logging
import sys

from bccmt.io.tables import TableError
from bccmt.logging_setup import setup_logging

logger = logging.getLogger("bccmt")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bccmt", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model", required=True, help="export dir (holds metadata.json)")
    common.add_argument("--precision", default="default", choices=("default", "fp32", "int8"),
                        help="which ONNX file (default: metadata.json's default_onnx)")
    common.add_argument("--threads", type=int, default=1,
                        help="onnxruntime intra-op threads (0 = all cores)")
    e = sub.add_parser("embed", parents=[common], help="embeddings of files or a wav.scp")
    e.add_argument("files", nargs="*", help="audio files (wav, flac, m4a)")
    e.add_argument("--wav-scp", default=None, help="a Kaldi wav.scp instead of files")
    e.add_argument("--out", default="embeddings.npy", help=".npy output (without --out-dir)")
    e.add_argument("--out-dir", default=None, help="write xvector.{ark,scp} here instead")
    v = sub.add_parser("verify", parents=[common], help="one trial: enrollment file(s), test")
    v.add_argument("files", nargs="+", metavar="FILE", help="ENROLL [ENROLL ...] TEST")
    v.add_argument("--threshold", default="eer",
                   help="eer | mindcf (minDCF(0.01)) | a number (default eer)")
    s = sub.add_parser("score", parents=[common], help="score a trial list from audio")
    s.add_argument("--trials", required=True, help="'enroll test [target|nontarget]' lines")
    s.add_argument("--wav-scp", required=True, help="wav.scp holding every trial utterance")
    s.add_argument("--out", default="scores.txt", help="score file (enroll test score)")
    return p


def _embed(model, a, p) -> None:
    from bccmt.runtime import commands

    if bool(a.files) == bool(a.wav_scp):
        p.error("embed: give audio files or --wav-scp (not both)")
    if a.wav_scp and not a.out_dir:
        p.error("embed: --wav-scp needs --out-dir")
    items = commands.wav_scp_items(a.wav_scp) if a.wav_scp else commands.file_items(a.files)
    rows = commands.embed_items(model, items)
    if a.out_dir:
        commands.write_ark_scp(a.out_dir, rows)
    else:
        commands.write_npy(a.out, list(rows))


def _verify(model, a, p) -> None:
    from bccmt.runtime import commands

    if len(a.files) < 2:
        p.error("verify: give at least one enrollment file and one test file")
    kind, value = a.threshold, None
    if kind not in ("eer", "mindcf"):
        try:
            kind, value = "eer", float(a.threshold)
        except ValueError:
            p.error(f"verify: --threshold must be eer, mindcf or a number, got {a.threshold}")
    decision = commands.verify(model, a.files[:-1], a.files[-1], kind, value)
    print(commands.describe(model, decision))


def _score(model, a, p) -> None:
    from bccmt.runtime import commands

    m = commands.score_trials(model, a.trials, a.wav_scp, a.out)
    if m:
        print(f"{a.trials}: EER {m['eer']:.3f}% (threshold {m['eer_threshold']:.6f}), "
              f"minDCF(0.01) {m['min_dcf_0.01']:.4f} (threshold "
              f"{m['min_dcf_0.01_threshold']:.6f}); {m['n_target']} target, "
              f"{m['n_nontarget']} nontarget trials")


def main(argv=None) -> int:
    p = _parser()
    a = p.parse_args(argv)
    setup_logging()
    from bccmt.features import FbankConfigError
    from bccmt.runtime.model import ExportedModel, ModelDirError

    try:
        model = ExportedModel(a.model, a.precision, a.threads)
        {"embed": _embed, "verify": _verify, "score": _score}[a.command](model, a, p)
    except (ModelDirError, TableError, FbankConfigError) as e:
        logger.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
