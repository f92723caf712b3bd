"""Tests of bccmt.models: shapes, attention maps, KD layer shapes, gradients, registry (heads: test_heads.py; fast paths: test_model_paths.py)."""

import pytest
import torch

from bccmt.models import build_model, list_models
from bccmt.models.attention import RelativePositionBias
from bccmt.models.bccmt_net import map_shapes
from bccmt.models.profile import count_flops, count_parameters

NAMES = ["bccmt_tiny", "bccmt_small", "bccmt_base", "bccmt_tiny_2dsa", "bccmt_small_2dsa",
         "bccmt_base_2dsa", "ecapa_tdnn_c512"]
BCCMT = [n for n in NAMES if n.startswith("bccmt")]


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {n: build_model(n).eval() for n in NAMES}


def feats(t, b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, 80, generator=g)


def test_registry_names():
    assert list_models() == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("t", [100, 150, 237])
def test_output_shapes(models, name, t):
    model = models[name]
    with torch.no_grad():
        emb = model(feats(t))
        emb2, maps = model(feats(t), return_attention=True)
    assert emb.shape == (2, model.embedding_dim)
    assert torch.equal(emb, emb2)
    if name == "ecapa_tdnn_c512":
        assert maps == [] and model.kd_layers == [] and model.embedding_dim == 192
        return
    cfg = model.cfg
    assert len(maps) == sum(cfg.blocks)
    shapes = map_shapes(cfg, t)
    freq = [40, 20, 10, 5]
    stage_of = [s for s, d in enumerate(cfg.blocks) for _ in range(d)]
    for a, (h, tq, tk), s in zip(maps, shapes, stage_of):
        if name.endswith("_2dsa"):
            r = cfg.kv_reduction[s]
            fk = -(-freq[s] // r)
            assert a.shape == (2, h, freq[s] * tq, fk * tk)
        else:
            assert a.shape == (2, h, tq, tk)


def test_embedding_dims(models):
    dims = {n: m.embedding_dim for n, m in models.items()}
    assert dims["bccmt_tiny"] == 128 and dims["bccmt_base"] == 192 and dims["bccmt_small"] == 192


def test_default_map_shapes_t200():
    shapes = map_shapes(build_model("bccmt_tiny").cfg, 200)
    assert [shapes[i] for i in (1, 3, 7, 9)] == [(1, 100, 13), (2, 50, 13), (4, 25, 13),
                                                (8, 25, 25)]
    with torch.no_grad():
        _, maps = build_model("bccmt_base").eval()(feats(200), return_attention=True)
    assert [tuple(maps[i].shape[1:]) for i in (1, 3, 9, 11)] == [shapes[i] for i in (1, 3, 7, 9)]


def test_short_and_bad_input_errors(models):
    with pytest.raises(ValueError, match="at least 50"):
        models["bccmt_tiny"](feats(40))
    with pytest.raises(ValueError, match="at least"):
        models["ecapa_tdnn_c512"](feats(30))
    with pytest.raises(ValueError, match=r"\(B, T, 80\)"):
        models["bccmt_tiny"](torch.randn(2, 100, 64))


@pytest.mark.parametrize("name", ["bccmt_tiny", "bccmt_tiny_2dsa", "ecapa_tdnn_c512"])
def test_eval_determinism_and_batch_independence(models, name):
    model = models[name]
    x = feats(150)
    with torch.no_grad():
        a, b = model(x), model(x)
        single = model(x[1:2])
    assert torch.equal(a, b)
    assert torch.allclose(a[1:2], single, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", BCCMT)
def test_attention_maps_are_probability_rows(models, name):
    with torch.no_grad():
        _, maps = models[name](feats(150), return_attention=True)
    for a in maps:
        assert (a >= 0).all()
        assert torch.allclose(a.sum(-1), torch.ones(a.shape[:-1]), atol=1e-5)


@pytest.mark.parametrize("student,teacher", [("bccmt_tiny", "bccmt_base"),
                                             ("bccmt_small", "bccmt_base"),
                                             ("bccmt_tiny_2dsa", "bccmt_base_2dsa")])
def test_kd_layer_shapes_match(models, student, teacher):
    s, t = models[student], models[teacher]
    assert len(s.kd_layers) == len(t.kd_layers) == 4
    x = feats(237)
    with torch.no_grad():
        _, ms = s(x, return_attention=True)
        _, mt = t(x, return_attention=True)
    for i, j in zip(s.kd_layers, t.kd_layers):
        assert ms[i].shape == mt[j].shape


def test_kd_layer_indices(models):
    assert models["bccmt_tiny"].kd_layers == [1, 3, 7, 9]
    assert models["bccmt_base"].kd_layers == [1, 3, 9, 11]
    assert models["bccmt_base_2dsa"].kd_layers == [1, 3, 9, 11]


@pytest.mark.parametrize("name,t", [("bccmt_tiny", 237), ("bccmt_tiny_2dsa", 237),
                                    ("bccmt_base", 150), ("ecapa_tdnn_c512", 100)])
def test_gradients_reach_every_parameter(name, t):
    torch.manual_seed(1)
    model = build_model(name).train()
    emb, maps = model(feats(t), return_attention=True)
    proj = torch.randn(emb.shape, generator=torch.Generator().manual_seed(2))
    loss = (emb * proj).sum() + sum((m * m).mean() for m in maps)
    loss.backward()
    missing = [n for n, p in model.named_parameters()
               if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0]
    assert missing == []


def test_tiny_parameter_count():
    n = count_parameters(build_model("bccmt_tiny"))
    assert abs(n - 271_440) <= 0.01 * 271_440, n


def test_ecapa_parameter_count():
    n = count_parameters(build_model("ecapa_tdnn_c512"))
    assert abs(n - 6.19e6) <= 0.02 * 6.19e6, n


def test_flops_revised_below_conventional():
    tiny = count_flops(build_model("bccmt_tiny"), 1.0)
    tiny_2d = count_flops(build_model("bccmt_tiny_2dsa"), 1.0)
    assert 0 < tiny <= 0.70 * tiny_2d


def test_registry_errors():
    with pytest.raises(ValueError) as e:
        build_model("bccmt_huge")
    assert all(n in str(e.value) for n in NAMES)
    with pytest.raises(ValueError) as e:
        build_model("bccmt_tiny", chanels=(8, 8, 8, 8))
    assert "chanels" in str(e.value) and "channels" in str(e.value)
    with pytest.raises(ValueError, match="attention"):
        build_model("bccmt_tiny", attention="3d")


def test_overrides_apply():
    model = build_model("bccmt_tiny", embedding_dim=64, kv_groups=1, time_strides=[1, 1, 2, 2])
    assert model.embedding_dim == 64 and model.cfg.time_strides == (1, 1, 2, 2)
    with torch.no_grad():
        emb, maps = model.eval()(feats(120), return_attention=True)
    assert emb.shape == (2, 64) and maps[-1].shape == (2, 8, 30, 30)


@pytest.mark.parametrize("name", ["bccmt_base", "bccmt_tiny_2dsa"])
def test_attention_maps_equal_the_forward_maps(models, name):
    """The teacher's maps-only path (no later blocks, no pooling) gives the forward's maps."""
    model = models[name].eval()
    x = feats(120)
    with torch.no_grad():
        _, maps = model(x, return_attention=True)
        for upto in (model.kd_layers[0], model.kd_layers[-1]):
            part = model.attention_maps(x, upto)
            assert len(part) == upto + 1
            assert all(torch.equal(a, b) for a, b in zip(part, maps))


@pytest.mark.parametrize("r", [2, 4, 8])
def test_kv_reduction_pads_with_real_frames(r):
    """T = k*r + 1: the partial last K/V window must be built from real frames only. Repeating
    the last input frame up to the next multiple of r gives the same keys and values, so the first
    T outputs and map rows must be identical (zero padding fails this)."""
    from bccmt.models.attention import TemporalMHSA

    torch.manual_seed(3)
    mhsa = TemporalMHSA(16, 2, r).eval()
    t = 3 * r + 1
    x = torch.randn(2, 16, 5, t)
    x_ext = torch.cat([x, x[..., -1:].expand(-1, -1, -1, r - 1)], dim=-1)
    with torch.no_grad():
        y, attn = mhsa(x)
        y_ext, attn_ext = mhsa(x_ext)
    assert attn.shape == attn_ext[:, :, :t].shape
    assert torch.allclose(y, y_ext[..., :t], atol=1e-6)
    assert torch.allclose(attn, attn_ext[:, :, :t], atol=1e-6)


@pytest.mark.parametrize("tq,tk,r", [(100, 13, 8), (237, 60, 4), (30, 30, 1), (7, 4, 2)])
def test_relative_bias_matches_direct_gather(tq, tk, r):
    rb = RelativePositionBias(3, max_distance=5)
    assert torch.equal(rb(tq, tk, r), rb.gather(tq, tk, r))


def test_benchmark_writes_table_and_json(tmp_path):
    import json

    from bccmt.studies.model_benchmark import BenchmarkConfig, run_benchmark, write_reports
    cfg = BenchmarkConfig(models=("bccmt_tiny", "bccmt_tiny:embedding_dim=64"), seconds=(1,),
                          threads=(1,), sweeps=2, runs=1, warmup=0,
                          baseline="bccmt_tiny", gpu=False)
    md, js = write_reports(run_benchmark(cfg), str(tmp_path))
    report = json.loads(open(js).read())
    tiny, small_emb = report["results"]
    assert tiny["params"] == count_parameters(build_model("bccmt_tiny"))
    assert small_emb["params"] < tiny["params"]
    assert tiny["flops_1s"] == count_flops(build_model("bccmt_tiny"), 1.0)
    assert tiny["cpu_ms"]["1"]["1"] > 0 and "1" in tiny["cpu_spread_pct"]["1"]
    text = open(md).read()
    assert "| bccmt_tiny | 271." in text and "bccmt_tiny:embedding_dim=64" in text


def test_recipe_configs_name_registered_models():
    import pathlib

    from bccmt.config import load_config, read_raw
    from bccmt.models import model_args
    conf = pathlib.Path(__file__).resolve().parents[1] / "egs" / "voxceleb" / "conf"
    models = {p: load_config(p).model for p in sorted(conf.glob("**/*.yaml"))
              if "model" in read_raw(p)}
    assert len(models) >= 8, sorted(models)  # 4 mini + 4 VoxCeleb model configs
    for path, model in models.items():
        model_args(model.name, **model.args)  # raises if the model or an argument is unknown
