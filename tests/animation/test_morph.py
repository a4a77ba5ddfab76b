import pytest
import torch
from torch.autograd import gradcheck

from lumigrad.animation import apply_morph_targets

D = torch.float64


def test_morph_by_hand_and_batched():
    base = torch.zeros(1, 1, dtype=D)
    deltas = torch.tensor([[[1.0]], [[10.0]]], dtype=D)
    assert torch.allclose(apply_morph_targets(base, deltas, torch.tensor([0.5, 0.1], dtype=D)),
                          torch.tensor([[1.5]], dtype=D))
    w = torch.tensor([[0.0, 0.0], [1.0, -1.0]], dtype=D)
    out = apply_morph_targets(base, deltas, w)
    assert out.shape == (2, 1, 1) and torch.allclose(out[:, 0, 0], torch.tensor([0.0, -9.0], dtype=D))


def test_morph_gradcheck():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(4, 3, generator=g, dtype=D, requires_grad=True)
    deltas = torch.randn(2, 4, 3, generator=g, dtype=D, requires_grad=True)
    w = torch.randn(3, 2, generator=g, dtype=D, requires_grad=True)
    assert gradcheck(apply_morph_targets, (base, deltas, w))


def test_morph_bad_inputs():
    with pytest.raises(ValueError, match="deltas"):
        apply_morph_targets(torch.zeros(4, 3), torch.zeros(2, 5, 3), torch.zeros(2))
    with pytest.raises(ValueError, match="weights"):
        apply_morph_targets(torch.zeros(4, 3), torch.zeros(2, 4, 3), torch.zeros(3))
