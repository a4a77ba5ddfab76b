import math

import pytest
import torch
from torch.autograd import gradcheck

from lumigrad.fluid import advect, grid_positions, sample_grid, sample_grid_ref


@pytest.mark.parametrize("shape", [(5, 6, 7), (6, 7)])
def test_sample_grid_matches_the_gather_reference(shape):
    g = torch.Generator().manual_seed(0)
    d = len(shape)
    values = torch.rand(*shape, 2, generator=g, dtype=torch.float64, requires_grad=True)
    pos = (torch.rand(*shape, d, generator=g, dtype=torch.float64) * 9 - 1).requires_grad_(True)
    a, b = sample_grid(values, pos), sample_grid_ref(values, pos)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    cot = torch.randn(a.shape, generator=g, dtype=torch.float64)
    ga = torch.autograd.grad(a, (values, pos), cot)
    gb = torch.autograd.grad(b, (values, pos), cot)
    for x, y in zip(ga, gb):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-10)


def test_uniform_velocity_shifts_by_whole_cells():
    q = torch.arange(6.0, dtype=torch.float64).repeat(5, 4, 1)  # [D, H, W] = x
    u = torch.zeros(5, 4, 6, 3, dtype=torch.float64)
    u[..., 0] = 2.0
    out = advect(q, u, dt=0.5, dx=0.5)  # two cells per step
    assert out[0, 0].tolist() == [0.0, 0.0, 0.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize("scheme", ["semi_lagrangian", "maccormack"])
@pytest.mark.parametrize("shape", [(4, 5, 4), (5, 6)])
def test_advection_gradcheck(scheme, shape):
    g = torch.Generator().manual_seed(1)
    d = len(shape)
    q = torch.rand(*shape, generator=g, dtype=torch.float64, requires_grad=True)
    u = (torch.rand(*shape, d, generator=g, dtype=torch.float64) - 0.5).requires_grad_(True)
    assert gradcheck(lambda q, u: advect(q, u, 0.7, 0.5, scheme), (q, u), eps=1e-6, atol=1e-7)


def _rotation_blob(n=32):
    pos = grid_positions((n, n), dtype=torch.float64)
    c = (n - 1) / 2
    u = torch.stack([-(pos[..., 1] - c), pos[..., 0] - c], -1) * (2 * math.pi / 64)  # one turn in 64 time units
    blob = torch.exp(-((pos - torch.tensor([c + 6, c])) ** 2).sum(-1) / (2 * 2.5 ** 2))
    return blob, u


@pytest.mark.parametrize("scheme, bound", [("semi_lagrangian", 2e-3), ("maccormack", 1e-3)])
def test_mass_is_nearly_conserved_in_a_divergence_free_rotation(scheme, bound):
    """A blob turned a quarter turn by a solid rotation (zero divergence): the relative mass change.

    Measured: semi-Lagrangian 0.06%, MacCormack 0.03% (linear interpolation is not conservative; the blob also
    diffuses: its peak drops to 0.65 / 0.91 of the start). An Euler back-trace would lose 14% here.
    """
    q, u = _rotation_blob()
    m0 = float(q.sum())
    for _ in range(16):
        q = advect(q, u, 1.0, 1.0, scheme)
    assert abs(float(q.sum()) - m0) / m0 < bound
    assert float(q.min()) >= 0.0


def test_maccormack_keeps_the_blob_sharper():
    q0, u = _rotation_blob()
    peaks = {}
    for scheme in ("semi_lagrangian", "maccormack"):
        q = q0
        for _ in range(16):
            q = advect(q, u, 1.0, 1.0, scheme)
        peaks[scheme] = float(q.max())
    assert peaks["maccormack"] > peaks["semi_lagrangian"] + 0.1


def test_bad_arguments_name_themselves():
    u = torch.zeros(4, 4, 2)
    with pytest.raises(ValueError, match="field"):
        advect(torch.zeros(4, 5), u, 1.0, 1.0)
    with pytest.raises(ValueError, match="velocity"):
        advect(torch.zeros(4, 4), torch.zeros(4, 4, 3), 1.0, 1.0)
    with pytest.raises(ValueError, match="dx"):
        advect(torch.zeros(4, 4), u, 1.0, 0.0)
    with pytest.raises(ValueError, match="scheme"):
        advect(torch.zeros(4, 4), u, 1.0, 1.0, "upwind")
    with pytest.raises(ValueError, match="velocity contains NaN"):
        advect(torch.zeros(4, 4), torch.full((4, 4, 2), float("nan")), 1.0, 1.0)
