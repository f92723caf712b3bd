"""Export a trained model for use outside the recipe (stage 7).

  python -m bccmt.bin.export --exp-dir exp/bccmt_tiny_kd [--out-dir exp/bccmt_tiny_kd/export]
      [--formats onnx torchscript] [--int8 [--int8-method dynamic|static --calib-feats SCP]]
      [--trials-name vox1_O_cleaned]

Writes <out-dir>/model.onnx (opset 20, dynamic batch and length, CMN inside, sherpa-onnx metadata
keys), model.torchscript.pt (traced; loads with torch.jit.load alone), model.int8.onnx with
--int8, and metadata.json (features, embedding dim, the training mean of cosine scoring, the EER
and minDCF(0.01) thresholds of exp/<m>/scores/<trials>.cosine.result, commit). Each format is
checked against the PyTorch model at batch 1 and 4 and 30..3000 frames (cosine >= 0.99999,
max abs error <= 1e-4 x norm); nothing is written unless every fp32 check passes.
"""

import argparse
import logging
import sys

from bccmt.logging_setup import setup_logging

logger = logging.getLogger("export")


def main(argv=None) -> int:
    from bccmt.export.pipeline import FORMATS, ExportConfig

    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp-dir", required=True, help="exp dir with config.yaml and models/final.pt")
    p.add_argument("--out-dir", default=None, help="default <exp-dir>/export")
    p.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS)
    p.add_argument("--int8", action="store_true", help="also write an int8 ONNX model")
    p.add_argument("--int8-method", default="dynamic", choices=("dynamic", "static"),
                   help="onnxruntime quantization: dynamic, or static calibrated on --calib-feats")
    p.add_argument("--calib-feats", default=None, help="feats.scp of training utterances")
    p.add_argument("--trials-name", default=None,
                   help="trial list whose cosine result gives the thresholds (default: the only "
                        "one, else vox1_O_cleaned or vox1_O)")
    p.add_argument("--threads", type=int, default=1, help="threads for the parity runs")
    a = p.parse_args(argv)
    setup_logging()
    logger.info("%s", " ".join(sys.argv))
    from bccmt.export.metadata import MetadataError
    from bccmt.export.pipeline import ParityError, export_exp
    from bccmt.exp import CheckpointError
    from bccmt.config import ConfigError

    cfg = ExportConfig(formats=tuple(a.formats), int8=a.int8, int8_method=a.int8_method,
                       calib_feats=a.calib_feats, trials_name=a.trials_name, threads=a.threads)
    try:
        export_exp(a.exp_dir, a.out_dir, cfg)
    except (ParityError, MetadataError, CheckpointError, ConfigError, ValueError) as e:
        logger.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
