"""Export (bccmt.bin.export): parity of ONNX and TorchScript with PyTorch, metadata, refusal.

One bccmt_tiny exp (random weights, real stage-4/5 outputs) is exported once per session
(tests/conftest.py ``exported``); the ONNX export is most of this file's time.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from bccmt.export import parity
from bccmt.export.parity import BATCHES, FRAMES, check_parity, parity_inputs, torch_reference

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model(exported):
    """Stage 4's module for the exported exp (bccmt.inputs.EmbeddingGraph, normal model paths)."""
    import torch

    from bccmt.embed import embedding_graph
    from bccmt.exp import load_embedding_model

    torch.set_num_threads(1)
    net, exp_cfg = load_embedding_model(exported[1])
    return embedding_graph(net, exp_cfg.features).eval()


def test_parity_onnx_and_torchscript_batch_1_4_all_lengths(exported, model):
    """Fresh inputs (another seed than the export's check) at every batch size and length."""
    from bccmt.runtime.model import OnnxEmbedder

    out = exported[3]
    inputs = parity_inputs(80, seed=11)
    assert sorted({x.shape for x in inputs}) == sorted((b, t, 80) for b in BATCHES
                                                       for t in FRAMES)
    reference = torch_reference(model)
    for name, runner in (("onnx", OnnxEmbedder(out / "model.onnx")),
                         ("torchscript", parity.torchscript_runner(out / "model.torchscript.pt"))):
        report = check_parity(name, reference, runner, inputs)
        assert report.passed, report.describe()
        assert 0 <= report.max_cosine_deficit <= 1e-5 and 0 < report.max_err_over_norm <= 1e-4
    # beyond the grid: 2 frames (tiled to 50) and 60 s (two chunks) pass the same check. (One
    # frame is degenerate: after CMN the tiled input is zero up to rounding, and so is what it
    # encodes.)
    edges = [parity_inputs(80, batches=(2,), frames=(2,), seed=12)[0],
             parity_inputs(80, batches=(1,), frames=(6000,), seed=13)[0]]
    for name, runner in (("onnx", OnnxEmbedder(out / "model.onnx")),
                         ("torchscript", parity.torchscript_runner(out / "model.torchscript.pt"))):
        r = check_parity(name, reference, runner, edges)
        assert r.passed, r.describe()
    meta = json.loads((out / "metadata.json").read_text())
    for name in ("onnx", "torchscript"):  # the export-time check covered the same grid
        p = meta["parity"][name]
        assert p["passed"] and p["batches"] == list(BATCHES) and p["frames"] == list(FRAMES)


def test_parity_check_catches_a_wrong_model(model):
    reference = torch_reference(model)
    inputs = parity_inputs(80, batches=(1,), frames=(30, 301))
    assert check_parity("same", reference, reference, inputs).passed
    skewed = check_parity("skewed", reference, lambda x: reference(x) * 1.001, inputs)
    assert not skewed.passed and skewed.max_cosine_deficit < 1e-9  # a scale still fails
    noisy = check_parity("noisy", reference, lambda x: reference(x[:, ::-1].copy()), inputs)
    assert not noisy.passed
    assert not check_parity("nan", reference, lambda x: reference(x) * np.nan, inputs).passed


def test_writers_export_the_eval_mode_graph(model, tmp_path):
    """Regression: the TorchScript-based ONNX exporter restores the outer module's mode on every
    submodule; a graph left in training mode traced batch norm with batch statistics."""
    from bccmt.export.graph import export_graph, export_torchscript

    graph = export_graph(model)
    assert not any(m.training for m in graph.modules())
    graph.train()
    export_torchscript(graph, tmp_path / "m.pt")
    inputs = parity_inputs(80, batches=(2,), frames=(120,))
    report = check_parity("ts", torch_reference(model),
                          parity.torchscript_runner(tmp_path / "m.pt"), inputs)
    assert report.passed, report.describe()


def test_onnx_metadata_and_dynamic_axes(exported):
    import onnx

    proto = onnx.load(str(exported[3] / "model.onnx"))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    props = {p.key: p.value for p in proto.metadata_props}
    # the keys sherpa-onnx's speaker-embedding extractor requires (see bccmt/export/metadata.py)
    assert props["framework"] == "wespeaker" and props["output_dim"] == "128"
    assert props["sample_rate"] == "16000" and props["normalize_samples"] == "0"
    assert props["language"] and "feature_normalize_type" not in props
    assert props["model_name"] == "bccmt_tiny" and props["commit"]
    assert json.loads(props["feature_config"])["num_mel_bins"] == 80
    dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in (proto.graph.input[0], proto.graph.output[0])]
    assert dims == [["batch", "frames", 80], ["batch", 128]]


def test_metadata_json_holds_what_scoring_needs(exported):
    from bccmt.io.vectors import read_vectors

    root, exp, trials, out = exported
    meta = json.loads((out / "metadata.json").read_text())
    for key in ("model_name", "commit", "embedding_dim", "sample_rate", "features", "inputs",
                "files", "default_onnx", "scoring", "parity"):
        assert key in meta, key
    assert meta["features"]["dither"] == 0.0 and meta["features"]["num_mel_bins"] == 80
    assert meta["inputs"]["min_frames"] == 50 and meta["inputs"]["length_quantum"] == 16
    assert meta["files"] == {"onnx": "model.onnx", "torchscript": "model.torchscript.pt",
                             "onnx_int8": "model.int8.onnx"}
    s = meta["scoring"]
    result = yaml.safe_load((exp / "scores" / "tiny_O.cosine.result").read_text())
    assert s["trials_name"] == "tiny_O" and s["backend"] == "cosine"
    for key in ("eer_percent", "eer_threshold", "min_dcf_p0.01", "min_dcf_p0.01_threshold"):
        assert s[key] == result[key], key
    _, train = read_vectors(exp / "embeddings" / "vox2_dev" / "xvector.scp")
    np.testing.assert_allclose(s["mean"], train.astype(np.float64).mean(0), rtol=0, atol=1e-12)
    assert oct(out.stat().st_mode & 0o777) != oct(0o700)  # not left with mkdtemp's mode


def test_torchscript_loads_without_bccmt(exported, tmp_path):
    from bccmt.runtime.model import OnnxEmbedder

    out = exported[3]
    x = parity_inputs(80, batches=(2,), frames=(77,), seed=3)[0]
    np.save(tmp_path / "x.npy", x)
    code = ("import sys; sys.modules['bccmt'] = None\n"
            "import numpy as np, torch\n"
            f"m = torch.jit.load({str(out / 'model.torchscript.pt')!r})\n"
            "y = m(torch.from_numpy(np.load('x.npy'))).detach().numpy()\n"
            "np.save('y.npy', y)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (2, 128)
    np.testing.assert_allclose(y, OnnxEmbedder(out / "model.onnx")(x), rtol=0, atol=1e-4)


def test_int8_model_is_written_and_close(exported):
    from bccmt.runtime.model import OnnxEmbedder

    out = exported[3]
    meta = json.loads((out / "metadata.json").read_text())
    p = meta["parity"]["onnx_int8"]
    assert p["gated"] is False and p["max_cosine_deficit"] < 0.05
    assert (out / "model.int8.onnx").stat().st_size < (out / "model.onnx").stat().st_size
    x = parity_inputs(80, batches=(1,), frames=(200,), seed=4)[0]
    a, b = OnnxEmbedder(out / "model.onnx")(x), OnnxEmbedder(out / "model.int8.onnx")(x)
    assert not np.array_equal(a, b)  # really quantised


def test_export_refuses_to_write_on_failed_parity(exported, monkeypatch, tmp_path):
    """A broken TorchScript export (wrong weights) fails its parity check: ParityError, the old
    output stays as it was and no temporary dir is left; likewise a wrong ONNX runtime result."""
    import torch

    from bccmt.export import pipeline

    root, exp, trials, out = exported
    target = tmp_path / "export"
    target.mkdir()
    (target / "old.txt").write_text("previous export")
    real_ts = pipeline.export_torchscript
    monkeypatch.setattr(pipeline, "parity_inputs",  # a smaller grid: the check, not its size
                        lambda n_mels, pool=None: parity_inputs(n_mels, pool, batches=(1, 2),
                                                                frames=(30, 301)))

    def broken_ts(graph, path):
        with torch.no_grad():
            graph.model.pool.fc.weight.mul_(1.05)
        real_ts(graph, path)
    monkeypatch.setattr(pipeline, "export_torchscript", broken_ts)
    with pytest.raises(pipeline.ParityError, match="torchscript: max 1-cosine"):
        pipeline.export_exp(exp, target, pipeline.ExportConfig(formats=("torchscript",)))
    monkeypatch.setattr(pipeline, "export_onnx",
                        lambda graph, path, props: shutil.copy(out / "model.onnx", path))
    real_runner = pipeline.OnnxEmbedder
    monkeypatch.setattr(pipeline, "OnnxEmbedder",
                        lambda path, threads: (lambda x: real_runner(path, threads)(x) + 1e-2))
    with pytest.raises(pipeline.ParityError, match="onnx: max 1-cosine"):
        pipeline.export_exp(exp, target, pipeline.ExportConfig(formats=("onnx",)))
    assert sorted(p.name for p in target.iterdir()) == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["export"]


def test_export_cli_errors(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-m", "bccmt.bin.export", "--exp-dir",
                        str(tmp_path / "nope")], env=env, capture_output=True, text=True)
    assert r.returncode == 1 and "nope/config.yaml" in r.stderr
