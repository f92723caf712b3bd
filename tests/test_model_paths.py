"""The fast paths against plain PyTorch ops (same maths up to float rounding): channels_last vs
NCHW, and the export mode (gather-free position bias) vs the training forward."""

import math

import pytest
import torch
from test_models import feats

from bccmt.models import build_model
from bccmt.models.attention import RelativePositionBias


def _rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp(min=1e-12)).item()


@pytest.mark.parametrize("momentum", [0.1, None])
def test_sub_band_batch_norm_matches_reshaped_batchnorm(momentum):
    from bccmt.models.subband_norm import sub_band_batch_norm
    torch.manual_seed(3)
    b, c, f, t, s = 4, 6, 20, 30, 5
    ref_bn = torch.nn.BatchNorm2d(c * s, momentum=momentum)
    torch.nn.init.normal_(ref_bn.weight)
    torch.nn.init.normal_(ref_bn.bias)
    new_bn = torch.nn.BatchNorm2d(c * s, momentum=momentum)
    new_bn.load_state_dict(ref_bn.state_dict())
    x = (torch.randn(b, c, f, t) * 2 + 0.5).contiguous(memory_format=torch.channels_last)
    g = torch.randn(b, c, f, t).contiguous(memory_format=torch.channels_last)
    x_ref, x_new = x.clone().requires_grad_(), x.clone().requires_grad_()
    for _ in range(2):  # two steps: running statistics and num_batches_tracked evolve alike
        y_ref = ref_bn(x_ref.reshape(b, c * s, f // s, t)).reshape(b, c, f, t)
        y_new = sub_band_batch_norm(x_new, new_bn, s)
        y_ref.backward(g)
        y_new.backward(g)
    assert y_new.is_contiguous(memory_format=torch.channels_last)
    assert _rel_err(y_new, y_ref) < 1e-5
    assert _rel_err(x_new.grad, x_ref.grad) < 1e-5
    assert _rel_err(new_bn.weight.grad, ref_bn.weight.grad) < 1e-5
    assert _rel_err(new_bn.bias.grad, ref_bn.bias.grad) < 1e-5
    for name, ref_buf in ref_bn.state_dict().items():
        assert torch.allclose(new_bn.state_dict()[name].float(), ref_buf.float(), rtol=1e-5,
                              atol=1e-6), name
    ref_bn.eval()
    new_bn.eval()
    with torch.no_grad():
        assert _rel_err(sub_band_batch_norm(x, new_bn, s),
                        ref_bn(x.reshape(b, c * s, f // s, t)).reshape(b, c, f, t)) < 1e-5


@pytest.mark.parametrize("name,t", [("bccmt_tiny", 120), ("bccmt_base", 101),
                                    ("bccmt_tiny_2dsa", 100)])
def test_channels_last_path_matches_nchw_reference(name, t):
    """Same weights, NCHW reference ops vs the channels_last path: train-mode embeddings, maps,
    every parameter gradient, the BN running statistics, then eval-mode embeddings.

    In float64: the two paths sum in different orders, and in float32 train-mode batch norm on a
    batch of 3 amplifies that rounding to ~1.5e-4 relative on some CPUs (a flaky 1e-4 limit). In
    float64 the same differences are ~1e-12, so the limits below hold on any CPU and thread
    count, while a wrong formula still fails them by orders of magnitude."""
    torch.manual_seed(4)
    ref = build_model(name).train().double()
    ref.channels_last_min_frames = math.inf
    new = build_model(name).train().double()
    new.channels_last_min_frames = 0
    new.load_state_dict(ref.state_dict())
    x = feats(t, b=3, seed=5).double()
    proj = torch.randn(3, ref.embedding_dim, generator=torch.Generator().manual_seed(6)).double()
    outs = {}
    for key, model in (("ref", ref), ("new", new)):
        emb, maps = model(x, return_attention=True)
        ((emb * proj).sum() + sum((m * m).mean() for m in maps)).backward()
        outs[key] = (emb.detach(), [m.detach() for m in maps])
    assert _rel_err(outs["new"][0], outs["ref"][0]) < 1e-9
    for a, b in zip(outs["new"][1], outs["ref"][1]):
        assert torch.allclose(a, b, rtol=0, atol=1e-10)
    ref_params = dict(ref.named_parameters())
    gmax = max(p.grad.abs().max().item() for p in ref.parameters())
    for pname, p in new.named_parameters():  # (some grads are ~1e-6: rounding-level atol)
        r = ref_params[pname].grad
        assert (p.grad - r).abs().max() <= 1e-8 * r.abs().max() + 1e-10 * gmax, pname
    ref_state = ref.state_dict()
    for key, buf in new.state_dict().items():
        assert torch.allclose(buf.double(), ref_state[key].double(), rtol=1e-9, atol=1e-10), key
    ref.eval()
    new.eval()
    with torch.no_grad():
        assert _rel_err(new(x), ref(x)) < 1e-9


@pytest.mark.parametrize("name", ["bccmt_tiny", "bccmt_tiny_2dsa", "ecapa_tdnn_c512"])
def test_export_mode_computes_the_same_function(name):
    """Export mode (NCHW always, gathered position bias) against the normal path, which runs
    forced to channels_last here: float64, so only rounding differs."""
    import copy

    torch.manual_seed(2)
    model = build_model(name).eval().double()
    exported = copy.deepcopy(model).set_export_mode()
    model.channels_last_min_frames = 0
    x = feats(157, b=2, seed=8).double()
    with torch.no_grad():
        assert _rel_err(exported(x), model(x)) < 1e-10
    biases = [m for m in exported.modules() if isinstance(m, RelativePositionBias)]
    assert all(m.export_mode for m in biases) and len(biases) == {
        "bccmt_tiny": 10, "bccmt_tiny_2dsa": 20, "ecapa_tdnn_c512": 0}[name]
    assert model.set_export_mode(False) is model and not any(
        getattr(m, "export_mode", False) for m in model.modules())
