"""DenseGrid / trilinear_interpolate / grid_total_variation: values, float64 gradcheck, boundary, bad input."""

import pytest
import torch

from lumigrad.volume.fields import DenseGrid, grid_total_variation, trilinear_interpolate

BOX = [-1.0, -0.5, 0.0, 1.0, 1.5, 3.0]


def _inside_points(n, gen, dtype=torch.float64):
    lo, hi = torch.tensor(BOX[:3], dtype=dtype), torch.tensor(BOX[3:], dtype=dtype)
    return lo + (hi - lo) * torch.rand(n, 3, generator=gen, dtype=dtype)


def test_matches_grid_sample_align_corners():
    gen = torch.Generator().manual_seed(0)
    grid = torch.randn(5, 6, 7, 3, generator=gen, dtype=torch.float64)
    pts = _inside_points(200, gen)
    lo, hi = torch.tensor(BOX[:3], dtype=torch.float64), torch.tensor(BOX[3:], dtype=torch.float64)
    norm = (pts - lo) / (hi - lo) * 2 - 1
    ref = torch.nn.functional.grid_sample(grid.permute(3, 0, 1, 2)[None], norm[None, :, None, None],
                                          align_corners=True)[0, :, :, 0, 0].T
    out = trilinear_interpolate(grid, pts, BOX)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)


def test_vertices_read_back_exactly_and_batch_dims():
    gen = torch.Generator().manual_seed(1)
    grid = torch.randn(3, 4, 5, 2, generator=gen, dtype=torch.float64)
    k, j, i = 2, 1, 3  # z, y, x
    lo, hi = torch.tensor(BOX[:3], dtype=torch.float64), torch.tensor(BOX[3:], dtype=torch.float64)
    p = lo + (hi - lo) * torch.tensor([i / 4, j / 3, k / 2], dtype=torch.float64)
    out = trilinear_interpolate(grid, p.expand(2, 3, 3), BOX)
    assert out.shape == (2, 3, 2)
    torch.testing.assert_close(out[1, 2], grid[k, j, i], rtol=0, atol=1e-12)


def test_gradcheck_grid_and_points_float64():
    gen = torch.Generator().manual_seed(2)
    grid = torch.randn(3, 4, 3, 2, generator=gen, dtype=torch.float64, requires_grad=True)
    pts = _inside_points(12, gen).requires_grad_()  # random: inside cells, away from faces with probability 1
    assert torch.autograd.gradcheck(lambda g, p: trilinear_interpolate(g, p, BOX), (grid, pts))


def test_outside_reads_fill_with_zero_gradient():
    grid = torch.randn(3, 3, 3, 1, dtype=torch.float64, requires_grad=True)
    pts = torch.tensor([[5.0, 0.0, 1.0], [0.0, 0.0, 1.0]], dtype=torch.float64, requires_grad=True)
    out = trilinear_interpolate(grid, pts, BOX, fill=-2.0)
    assert out[0, 0].item() == -2.0
    out.sum().backward()
    assert pts.grad[0].abs().sum() == 0
    assert grid.grad.abs().sum() > 0  # the inside point still reaches the grid


def test_module_forward_and_total_variation():
    g = DenseGrid([0, 0, 0, 1, 1, 1], resolution=(4, 3, 2), channels=2)
    assert g.grid.shape == (2, 3, 4, 2) and g.resolution == (4, 3, 2)
    with torch.no_grad():
        g.grid[..., 0] = torch.arange(4.0)  # ramp 0..3 along x: x differences 1
    tv = g.total_variation()
    assert tv.item() == pytest.approx(0.5)  # channel 1 constant: mean over both channels of 1 and 0
    assert g.total_variation("l1").item() == pytest.approx(0.5)
    grid64 = torch.randn(3, 3, 3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(grid_total_variation, (grid64,))
    out = g(torch.tensor([[0.5, 0.5, 0.5]]))
    assert out[0, 0].item() == pytest.approx(1.5)


@pytest.mark.parametrize("call, match", [
    (lambda: trilinear_interpolate(torch.zeros(2, 2, 2, 1), torch.tensor([[float("nan"), 0, 0]]), BOX), "points"),
    (lambda: trilinear_interpolate(torch.zeros(2, 2, 2, 1), torch.zeros(4, 2), BOX), "points"),
    (lambda: trilinear_interpolate(torch.zeros(1, 2, 2, 1), torch.zeros(4, 3), BOX), "grid"),
    (lambda: trilinear_interpolate(torch.zeros(2, 2, 2), torch.zeros(4, 3), BOX), "grid"),
    (lambda: trilinear_interpolate(torch.zeros(2, 2, 2, 1), torch.zeros(4, 3), [0, 0, 0, 1, -1, 1]), "aabb"),
    (lambda: DenseGrid(BOX, resolution=1), "resolution"),
    (lambda: DenseGrid(BOX, resolution=8, channels=0), "channels"),
    (lambda: DenseGrid([0, 0, 0, 1, 1], resolution=4), "aabb"),
    (lambda: grid_total_variation(torch.zeros(2, 2, 2, 1), "l3"), "norm"),
])
def test_bad_input_names_argument(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
