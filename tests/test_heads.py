"""Classification heads: the AAM and AM margins, accuracy on margin-free logits."""

import math

import pytest
import torch
import torch.nn.functional as F

from bccmt.models import build_head


def test_aam_head_margin():
    torch.manual_seed(0)
    head = build_head("aam", 8, 5, scale=30.0, margin=0.2)
    emb, labels = torch.randn(4, 8), torch.tensor([0, 1, 2, 4])
    cos = F.linear(F.normalize(emb), F.normalize(head.weight))
    logits = head(emb, labels)
    rows = torch.arange(4)
    theta = torch.acos(cos[rows, labels].clamp(-1, 1))
    expected = torch.where(theta + 0.2 <= math.pi, torch.cos(theta + 0.2),
                           cos[rows, labels] - math.sin(math.pi - 0.2) * 0.2)
    assert torch.allclose(logits[rows, labels], 30.0 * expected, atol=1e-4)
    assert (logits[rows, labels] < 30.0 * cos[rows, labels]).all()
    mask = torch.ones_like(cos, dtype=torch.bool)
    mask[rows, labels] = False
    assert torch.allclose(logits[mask], 30.0 * cos[mask], atol=1e-5)
    head.margin = 0.0
    assert torch.allclose(head(emb, labels), 30.0 * cos, atol=1e-4)


def test_head_accuracy_ignores_the_margin():
    """cos 0.9 to the target centre and 0.85 to another: the AAM logits with m = 0.2 rank the other
    class first (cos(acos(0.9) + 0.2) = 0.80), but the embedding is nearest its own centre."""
    head = build_head("aam", 2, 2, scale=30.0, margin=0.2)
    a, b = math.acos(0.9), math.acos(0.85)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [math.cos(a + b), math.sin(a + b)]]))
    emb = torch.tensor([[math.cos(a), math.sin(a)]])
    labels = torch.tensor([0])
    assert head(emb, labels).argmax(-1).item() == 1
    assert head.accuracy(emb, labels).item() == 1.0


def test_aam_head_past_pi_stays_monotonic():
    head = build_head("aam", 2, 2, scale=1.0, margin=0.5)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    emb = torch.tensor([[-1.0, 0.05]])               # theta close to pi for class 0
    cos0 = F.normalize(emb)[0, 0]
    out = head(emb, torch.tensor([0]))[0, 0]
    assert torch.isclose(out, cos0 - math.sin(math.pi - 0.5) * 0.5, atol=1e-5)


def test_am_head_margin_and_errors():
    head = build_head("am", 8, 5, scale=32.0, margin=0.3)
    emb, labels = torch.randn(3, 8), torch.tensor([0, 3, 3])
    cos = F.linear(F.normalize(emb), F.normalize(head.weight))
    expected = 32.0 * (cos - 0.3 * F.one_hot(labels, 5))
    assert torch.allclose(head(emb, labels), expected, atol=1e-5)
    with pytest.raises(ValueError, match="aam, am"):
        build_head("arc", 8, 5)
