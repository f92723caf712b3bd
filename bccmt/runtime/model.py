"""An exported model directory, loaded for inference with onnxruntime (no torch).

exp/<m>/export/ holds the model files and ``metadata.json`` (written by bccmt.export.metadata):
  model_name, exp, commit, created   where the model came from
  embedding_dim, sample_rate         (D,) float32 embeddings of 16 kHz audio
  model_name, exp_name               the architecture (bccmt_tiny) and the exp it was trained as
                                     (bccmt_tiny_kd)
  features                           the fbank config (features.FbankConfig) at extraction
                                     settings: dither 0
  silence_floor, inputs              what the graph does after the fbank (the per-bin floor, tiling
                                     to min_frames, chunks of max_chunk_frames, the length
                                     quantum): for information, all of it is inside the graph
  files                              {"onnx": ..., "onnx_int8": ..., "torchscript": ...}
  default_onnx                       the file ``bccmt`` uses unless told otherwise
  scoring                            cosine: the training mean it subtracts ("mean", D floats), the
                                     EER and minDCF(0.01) thresholds and the trial list they came
                                     from (null when the exp had no stage-5 results)
  parity                             the export-time parity figures per format
  int8_decision                      (after stage 7) why int8 is, or is not, the default
Embeddings are computed exactly as stage 4 did: kaldi-native-fbank features of the whole file at
``features`` (bccmt.features.compute_fbank), then one forward of the graph (bccmt.inputs.
EmbeddingGraph, exported), which does everything stage 4 does after the fbank.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from bccmt.audio import AudioError, read_audio_converted
from bccmt.backend.cosine import prepare_cosine
from bccmt.features import FbankConfig, compute_fbank

METADATA_FILE = "metadata.json"
REQUIRED_KEYS = ("model_name", "embedding_dim", "sample_rate", "features", "inputs", "files",
                 "default_onnx", "scoring")
THRESHOLDS = {"eer": "eer_threshold", "mindcf": "min_dcf_p0.01_threshold"}


class ModelDirError(RuntimeError):
    """An export directory or an input that cannot be used; the message names the file."""


def read_metadata(model_dir) -> Dict[str, object]:
    """metadata.json of an export dir, with its required keys checked."""
    path = Path(model_dir) / METADATA_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelDirError(f"{path}: no such file (not an export dir? run bccmt.bin.export)")
    except (OSError, ValueError) as e:
        raise ModelDirError(f"{path}: unreadable ({e})") from None
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise ModelDirError(f"{path}: missing key(s) {', '.join(missing)}")
    return meta


class OnnxEmbedder:
    """One onnxruntime session of an exported graph: (B, T, F) raw fbank -> (B, D) float32."""

    def __init__(self, path, threads: int = 1):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads  # 0: onnxruntime's default (all cores)
        opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), opts,
                                                providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise ModelDirError(f"{path}: cannot load the ONNX model ({e})") from None
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, feats: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(feats, dtype=np.float32)
        return self.session.run(None, {self.input_name: x})[0]


@dataclasses.dataclass
class Decision:
    score: float        # cosine after subtracting the training mean
    threshold: float    # accept when score > threshold
    kind: str           # eer | mindcf | given
    accept: bool


class ExportedModel:
    """Embeds audio and scores trials like the recipe, from an export dir."""

    def __init__(self, model_dir, precision: str = "default", threads: int = 1):
        self.dir = Path(model_dir)
        self.meta = read_metadata(self.dir)
        files = self.meta["files"]
        name = {"default": self.meta["default_onnx"], "fp32": files.get("onnx"),
                "int8": files.get("onnx_int8")}.get(precision, "")
        if not name:
            raise ModelDirError(f"{self.dir}: no {precision} ONNX model in {METADATA_FILE} "
                                f"(files: {', '.join(f'{k}={v}' for k, v in files.items())})")
        self.onnx_file = self.dir / name
        self.net = OnnxEmbedder(self.onnx_file, threads)
        self.fbank = FbankConfig.from_dict(self.meta["features"], f"{self.dir}/{METADATA_FILE}")
        if not self.meta["inputs"].get("inside_graph"):
            raise ModelDirError(f"{self.dir}/{METADATA_FILE}: an export from before the graph held "
                                "every step after the fbank; export the exp again (stage 7)")
        self.scoring = self.meta["scoring"]

    @property
    def dim(self) -> int:
        return int(self.meta["embedding_dim"])

    @property
    def name(self) -> str:
        """The exp the model was trained as (e.g. bccmt_tiny_kd), else the architecture."""
        return str(self.meta.get("exp_name") or self.meta["model_name"])

    def embed_feats(self, feats: np.ndarray) -> np.ndarray:
        """(T, F) raw fbank of a whole file -> (D,) float32 (the graph does the rest)."""
        return self.net(feats[None])[0]

    def embed_audio(self, spec: str, name: Optional[str] = None) -> np.ndarray:
        """A file path or wav.scp value -> (D,) embedding; errors name the input."""
        name = name or spec
        try:
            wave = read_audio_converted(spec, self.fbank.sample_rate, name=name)
            feats = compute_fbank(wave, self.fbank)
        except (AudioError, ValueError) as e:
            raise ModelDirError(f"{name}: {e}") from None
        emb = self.embed_feats(feats)
        if not np.all(np.isfinite(emb)):
            raise ModelDirError(f"{name}: the embedding is not finite")
        return emb

    def scoring_info(self) -> Dict[str, object]:
        """The metadata's scoring section; an error naming the file if the export has none."""
        if not self.scoring:
            raise ModelDirError(f"{self.dir}/{METADATA_FILE}: no scoring section (the exp had no "
                                "stage-5 cosine results when it was exported): no threshold")
        return self.scoring

    def prepare(self, emb: np.ndarray) -> np.ndarray:
        """(N, D) embeddings -> training mean subtracted, length-normalised (cosine backend)."""
        return prepare_cosine(np.atleast_2d(emb), np.asarray(self.scoring_info()["mean"]))

    def threshold(self, kind: str) -> float:
        if kind not in THRESHOLDS:
            raise ModelDirError(f"unknown threshold '{kind}'; valid: {', '.join(THRESHOLDS)}")
        return float(self.scoring_info()[THRESHOLDS[kind]])

    def verify(self, enroll: Sequence[np.ndarray], test: np.ndarray, kind: str = "eer",
               threshold: Optional[float] = None) -> Decision:
        """Cosine of the test embedding with the enrollment: the mean of the prepared enrollment
        embeddings, length-normalised (one file: the recipe's scoring exactly)."""
        model = self.prepare(np.stack(enroll)).mean(axis=0)
        model /= max(np.linalg.norm(model), 1e-12)
        score = float(self.prepare(test)[0] @ model)
        thr = self.threshold(kind) if threshold is None else float(threshold)
        return Decision(score, thr, kind if threshold is None else "given", score > thr)


def cosine_trial_scores(model: ExportedModel, keys: List[str], emb: np.ndarray,
                        trials: Sequence[tuple]) -> np.ndarray:
    """The recipe's cosine backend (bccmt.backend.cosine_scores, the exported training mean) on
    (enroll, test, ...) trials over embeddings ``emb`` whose rows are in ``keys`` order."""
    from bccmt.backend.cosine import cosine_scores

    index = {k: i for i, k in enumerate(keys)}
    enroll = np.array([index[t[0]] for t in trials], dtype=np.int64)
    test = np.array([index[t[1]] for t in trials], dtype=np.int64)
    return cosine_scores(emb, enroll, test, np.asarray(model.scoring_info()["mean"]))
