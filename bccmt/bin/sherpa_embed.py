"""Stage 7: embeddings of a wav.scp computed by sherpa-onnx from an exported model.

  python -m bccmt.bin.sherpa_embed --model exp/bccmt_tiny/export --wav-scp data/vox1/wav.scp \\
      --out-dir exp/bccmt_tiny/export_eval/sherpa/embeddings/vox1 [--threads 1]

Runs sherpa-onnx's speaker extractor on the export's fp32 ONNX file (metadata.json files.onnx,
never the int8 one) over every wav.scp entry and writes <out-dir>/xvector.{ark,scp} (Kaldi format,
the recipe's), one embedding per entry or an error naming the utterance (bccmt.export.clients).
"""

import argparse
import logging
import shlex
import sys

from bccmt.logging_setup import setup_logging

logger = logging.getLogger("sherpa_embed")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="export dir (metadata.json) or an .onnx file")
    p.add_argument("--wav-scp", required=True, help="Kaldi wav.scp: paths or 'cmd |' pipes")
    p.add_argument("--out-dir", required=True, help="writes xvector.{ark,scp} here")
    p.add_argument("--threads", type=int, default=1, help="sherpa-onnx threads")
    a = p.parse_args(argv)
    setup_logging()
    logger.info("%s", " ".join(shlex.quote(x) for x in sys.argv))
    from tqdm import tqdm

    from bccmt.exp import EmbeddingsDir
    from bccmt.export.clients import ClientError, onnx_model_file, sherpa_embeddings
    from bccmt.io.tables import TableError
    from bccmt.io.vectors import write_vectors
    from bccmt.runtime.commands import wav_scp_items
    from bccmt.runtime.model import ModelDirError

    out = EmbeddingsDir(a.out_dir)
    try:
        onnx = onnx_model_file(a.model)
        items = wav_scp_items(a.wav_scp)
        rows = sherpa_embeddings(onnx, tqdm(items, desc="sherpa-onnx", unit="utt",
                                            disable=None, leave=False), a.threads)
        n = write_vectors(*out.xvector(), rows)
    except (ClientError, ModelDirError, TableError) as e:
        logger.error("%s", e)
        return 1
    if n != len(items):
        logger.error("%s: %d embeddings for %d entries of %s", out.xvector_scp, n,
                     len(items), a.wav_scp)
        return 1
    logger.info("wrote %d sherpa-onnx embeddings of %s (%s) to %s", n, a.wav_scp, onnx,
                out.xvector_scp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
