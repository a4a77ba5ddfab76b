"""The fused adjoint of cached mip tables against autograd through the pyramid (float64)."""

import pytest
import torch

from lumigrad.kernels.texture_pyramid import cached_table, pool_level, table_adjoint

DT = torch.float64


def _pyramid_table(tex):
    levels = [tex]
    while max(levels[-1].shape[-3:-1]) > 1:
        levels.append(pool_level(levels[-1]))
    num_tex = tex[..., 0, 0, 0].numel()
    shapes = [tuple(lv.shape[-3:-1]) for lv in levels]
    return torch.cat([lv.reshape(num_tex, *lv.shape[-3:]).reshape(-1, tex.shape[-1]) for lv in levels]), shapes


@pytest.mark.parametrize("shape", [(8, 8, 2), (5, 6, 3), (7, 3, 1), (2, 4, 6, 2)])
def test_adjoint_equals_autograd_through_the_pyramid(shape):
    gen = torch.Generator().manual_seed(0)
    tex = torch.rand(shape, dtype=DT, generator=gen, requires_grad=True)
    table, shapes = _pyramid_table(tex)
    v_table = torch.randn(table.shape, dtype=DT, generator=gen)
    (expected,) = torch.autograd.grad(table, tex, v_table)
    torch.testing.assert_close(table_adjoint(v_table, tex.shape, shapes), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(4, 4, 2), (3, 5, 1), (2, 2, 3, 1)])
def test_cached_table_gradcheck_with_a_transform(shape):
    """Values recomputed from the input on every call (as a cache miss does), so the numeric Jacobian sees
    the real function; the analytic one is the fused adjoint times the transform's slope."""

    def transform(x):
        return torch.sin(x) * x

    def fn(tex):
        values, shapes = _pyramid_table(transform(tex.detach()))
        x = tex.detach().requires_grad_(True)
        with torch.enable_grad():
            (slope,) = torch.autograd.grad(transform(x).sum(), x)
        return cached_table(tex, values, slope, shapes)

    tex = torch.rand(shape, dtype=DT, generator=torch.Generator().manual_seed(1), requires_grad=True)
    assert torch.autograd.gradcheck(fn, (tex,))
    values, _ = _pyramid_table(transform(tex))
    torch.testing.assert_close(fn(tex), values.detach(), rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(16, 8, 2), (12, 20, 3), (7, 6, 1), (2, 8, 8, 2), (9, 9, 2)])
@pytest.mark.parametrize("first_level", [1, 2, 3])
def test_adjoint_from_a_first_level_ignores_the_finer_rows(shape, first_level):
    """Levels finer than ``first_level`` hold no gradient: whatever their rows contain (scratch left-overs) is
    ignored, and the result equals the full adjoint of the table with those rows zero (even sizes take one
    broadcast, odd ones the per-level adjoint)."""
    gen = torch.Generator().manual_seed(5)
    tex = torch.rand(shape, dtype=DT, generator=gen)
    table, shapes = _pyramid_table(tex)
    num_tex = tex[..., 0, 0, 0].numel()
    start = sum(num_tex * h * w for h, w in shapes[:first_level])
    v_table = torch.randn(table.shape, dtype=DT, generator=gen)
    clean = v_table.clone()
    clean[:start] = 0
    slope = torch.rand(shape, dtype=DT, generator=gen)
    for s in (None, slope):
        expected = table_adjoint(clean, tex.shape, shapes, s)
        got = table_adjoint(v_table, tex.shape, shapes, s, first_level)
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(16, 8, 2), (12, 20, 3), (7, 6, 1), (2, 8, 8, 2), (9, 9, 2), (2, 8, 16, 3),
                                   (8, 8, 4)])
@pytest.mark.parametrize("first_level", [0, 1, 2])
def test_adjoint_in_place_equals_the_fresh_one_and_views_level_0_of_the_table(shape, first_level):
    """``in_place=True`` accumulates in the table's own rows and returns level 0's rows (no level-sized
    buffer); values are those of the out-of-place adjoint, with and without a slope."""
    gen = torch.Generator().manual_seed(6)
    tex = torch.rand(shape, dtype=DT, generator=gen)
    table, shapes = _pyramid_table(tex)
    v_table = torch.randn(table.shape, dtype=DT, generator=gen)
    slope = torch.rand(shape, dtype=DT, generator=gen)
    for s in (None, slope):
        expected = table_adjoint(v_table, tex.shape, shapes, s, first_level)
        scratch = v_table.clone()
        got = table_adjoint(scratch, tex.shape, shapes, s, first_level, in_place=True)
        assert got.data_ptr() == scratch.data_ptr() and got.shape == tex.shape
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(32, 16, 3), (2, 16, 8, 4)])
def test_in_place_adjoint_kernel_float32_equals_the_pytorch_adds(shape):
    """3 or 4 channels: the in-place adjoint adds each even level's 2x2 spread with a Warp kernel
    (``texture_kernels.pool_adjoint_add``); in float32 it gives the out-of-place PyTorch adjoint's values."""
    gen = torch.Generator().manual_seed(7)
    tex = torch.rand(shape, generator=gen)
    table, shapes = _pyramid_table(tex)
    v_table = torch.randn(table.shape, generator=gen)
    expected = table_adjoint(v_table, tex.shape, shapes)
    got = table_adjoint(v_table.clone(), tex.shape, shapes, in_place=True)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
