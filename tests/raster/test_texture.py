"""texture / build_mipmaps: kernel vs the grid_sample twin, wrap modes, mip levels, gradients, hand examples."""

import math

import pytest
import torch

import lumigrad as lg
from lumigrad.raster.reference import texture_ref

from ..conftest import cosine, save_failure_images

DT = torch.float64
WRAPS = ("repeat", "clamp", "mirror")


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _tex(h, w, c=3, seed=0, batch=()):
    return torch.rand(*batch, h, w, c, generator=_gen(seed), dtype=DT)


def _uv(shape, h, w, seed=1, lo=None, hi=None, away_from=None, margin=0.08):
    """Random uv ``shape + (2,)`` in [lo, hi]; ``away_from="edges"|"centres"`` keeps u*W, v*H (or u*W-0.5, ...)
    at least ``margin`` texels from an integer (texel boundaries for nearest, bilinear kinks for gradcheck).

    The default range is [-1, 2] less a little over half a texel at both ends: the twin's 3x3 tiling with border
    padding reproduces "repeat" only that far (in the outer half texel it clamps instead of wrapping).
    """
    inset = 0.5 / min(h, w) + 1e-3
    lo = -1 + inset if lo is None else lo
    hi = 2 - inset if hi is None else hi
    g = _gen(seed)
    uv = lo + (hi - lo) * torch.rand(*shape, 2, generator=g, dtype=DT)
    if away_from is not None:
        size = torch.tensor([w, h], dtype=DT)
        x = uv * size - (0.5 if away_from == "centres" else 0.0)
        frac = x - x.floor()
        frac = frac.clamp(margin, 1 - margin)
        uv = (x.floor() + frac + (0.5 if away_from == "centres" else 0.0)) / size
    return uv


# ------------------------------------------------------------------------------------------------ hand examples
def test_docstring_example_1x2():
    tex = torch.tensor([[[0.0], [1.0]]], dtype=DT)  # Ht=1, Wt=2
    uv = torch.tensor([[[0.5, 0.5], [0.25, 0.5], [0.75, 0.5], [0.375, 0.5]]], dtype=DT)
    out = lg.texture(tex, uv, filter="bilinear", wrap="clamp")
    torch.testing.assert_close(out[0, :, 0], torch.tensor([0.5, 0.0, 1.0, 0.25], dtype=DT), rtol=0, atol=1e-15)
    # At u = 0 the sample sits half-way between texel 0 and texel -1, which is texel 1 (repeat) or 0 (clamp / mirror).
    at0 = torch.tensor([[[0.0, 0.5]]], dtype=DT)
    assert float(lg.texture(tex, at0, filter="bilinear", wrap="repeat")) == pytest.approx(0.5, abs=1e-15)
    assert float(lg.texture(tex, at0, filter="bilinear", wrap="clamp")) == pytest.approx(0.0, abs=1e-15)
    assert float(lg.texture(tex, at0, filter="bilinear", wrap="mirror")) == pytest.approx(0.0, abs=1e-15)
    # Nearest picks the texel that contains the point.
    near = lg.texture(tex, torch.tensor([[[0.49, 0.5], [0.51, 0.5], [1.2, 0.5], [-0.2, 0.5]]], dtype=DT),
                      filter="nearest", wrap="repeat")
    assert near[0, :, 0].tolist() == [0.0, 1.0, 0.0, 1.0]


def test_bilinear_by_hand_2x2():
    tex = torch.tensor([[[1.0], [2.0]], [[3.0], [5.0]]], dtype=DT)
    # Texel centres at 0.25 / 0.75; (0.5, 0.5) averages all four; (0.4, 0.65): fx = 0.3, fy = 0.8.
    uv = torch.tensor([[[0.5, 0.5], [0.4, 0.65]]], dtype=DT)
    out = lg.texture(tex, uv, filter="bilinear", wrap="clamp")[0, :, 0]
    expect_b = (1 * 0.7 + 2 * 0.3) * 0.2 + (3 * 0.7 + 5 * 0.3) * 0.8
    torch.testing.assert_close(out, torch.tensor([2.75, expect_b], dtype=DT), rtol=0, atol=1e-14)


# ---------------------------------------------------------------------------------------- forward vs the twin
@pytest.mark.parametrize("wrap", WRAPS)
@pytest.mark.parametrize("size", [(4, 4), (5, 7), (8, 3), (1, 6)])
def test_bilinear_matches_reference(wrap, size):
    h, w = size
    tex = _tex(h, w, 3, seed=h * 10 + w)
    uv = _uv((6, 9), h, w, seed=w)
    out = lg.texture(tex, uv, filter="bilinear", wrap=wrap)
    assert out.shape == (6, 9, 3) and out.dtype == DT
    _assert_close_images(f"texture_bilinear_{wrap}_{h}x{w}", out, texture_ref(tex, uv, filter="bilinear", wrap=wrap),
                         1e-13)


@pytest.mark.parametrize("wrap", WRAPS)
@pytest.mark.parametrize("size", [(4, 4), (5, 7)])
def test_nearest_matches_reference(wrap, size):
    h, w = size
    tex = _tex(h, w, 2, seed=3)
    uv = _uv((7, 8), h, w, seed=4, away_from="edges", margin=0.05)
    out = lg.texture(tex, uv, filter="nearest", wrap=wrap)
    ref = texture_ref(tex, uv, filter="nearest", wrap=wrap)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)


def test_auto_filter_is_bilinear_without_derivs_and_trilinear_with():
    tex = _tex(8, 8, 2)
    uv = _uv((3, 4), 8, 8)
    torch.testing.assert_close(lg.texture(tex, uv), lg.texture(tex, uv, filter="bilinear"), rtol=0, atol=0)
    duv = _footprints((3, 4), 8, 8, lod_lo=0.3, lod_hi=2.7, seed=2)
    torch.testing.assert_close(lg.texture(tex, uv, uv_derivs=duv),
                               lg.texture(tex, uv, uv_derivs=duv, filter="trilinear"), rtol=0, atol=0)


# ------------------------------------------------------------------------------------------------- trilinear
def _assert_close_images(name, out, ref, tol):
    try:
        torch.testing.assert_close(out, ref, rtol=tol, atol=tol)
    except AssertionError:
        save_failure_images(name, actual=out, expected=ref, diff=(out - ref).abs())
        raise


def _footprints(shape, h, w, lod_lo, lod_hi, seed, avoid_integer_lod=False, ratio=(0.2, 0.8)):
    """Random ``uv_derivs shape + (2, 2)`` whose level of detail ``log2(max footprint in texels)`` is uniform in
    [lod_lo, lod_hi]; the d/dy column is ``ratio`` times shorter so that the max is not at a tie."""
    g = _gen(seed)
    lod = lod_lo + (lod_hi - lod_lo) * torch.rand(*shape, generator=g, dtype=DT)
    if avoid_integer_lod:
        lod = lod.floor() + (lod - lod.floor()).clamp(0.15, 0.85)
    ax = torch.rand(*shape, generator=g, dtype=DT) * 2 * math.pi
    ay = torch.rand(*shape, generator=g, dtype=DT) * 2 * math.pi
    r = ratio[0] + (ratio[1] - ratio[0]) * torch.rand(*shape, generator=g, dtype=DT)
    length = 2.0 ** lod
    dx = torch.stack([torch.cos(ax) / w, torch.sin(ax) / h], -1) * length[..., None]
    dy = torch.stack([torch.cos(ay) / w, torch.sin(ay) / h], -1) * (length * r)[..., None]
    return torch.stack([dx, dy], -1)  # [..., 2 (u, v), 2 (d/dx, d/dy)]


@pytest.mark.parametrize("wrap", WRAPS)
@pytest.mark.parametrize("size", [(16, 16), (5, 7), (12, 20)])
def test_trilinear_matches_reference(wrap, size):
    h, w = size
    tex = _tex(h, w, 3, seed=11)
    levels = len(lg.build_mipmaps(tex))
    # Coarse levels are 2 texels wide: the twin reproduces "repeat" only a quarter unit inside [-1, 2] there.
    uv = _uv((8, 10), h, w, seed=12, lo=-0.74, hi=1.74)
    # Footprints from 1/4 texel (lod -2, clamps to level 0) past the 1x1 level (clamps to the coarsest).
    duv = _footprints((8, 10), h, w, lod_lo=-2.0, lod_hi=levels + 1.0, seed=13)
    out = lg.texture(tex, uv, uv_derivs=duv, filter="trilinear", wrap=wrap)
    ref = texture_ref(tex, uv, uv_derivs=duv, filter="trilinear", wrap=wrap)
    _assert_close_images(f"texture_trilinear_{wrap}_{h}x{w}", out, ref, 1e-12)


def test_trilinear_lod_extremes():
    tex = _tex(8, 8, 2, seed=5)
    uv = _uv((4, 5), 8, 8, seed=6)
    fine = _footprints((4, 5), 8, 8, lod_lo=-6.0, lod_hi=-0.01, seed=7)
    coarse = _footprints((4, 5), 8, 8, lod_lo=3.01, lod_hi=9.0, seed=8)
    # lod < 0 is level 0: plain bilinear.
    torch.testing.assert_close(lg.texture(tex, uv, uv_derivs=fine, filter="trilinear"),
                               lg.texture(tex, uv, filter="bilinear"), rtol=1e-14, atol=1e-14)
    # lod > log2(8) = 3 is the 1x1 level: the mean of a power-of-two texture, everywhere.
    out = lg.texture(tex, uv, uv_derivs=coarse, filter="trilinear")
    torch.testing.assert_close(out, tex.mean((0, 1)).expand_as(out), rtol=1e-14, atol=1e-14)
    # Zero derivatives (a magnified texture) are level 0 too, with no NaN.
    zero = lg.texture(tex, uv, uv_derivs=torch.zeros(4, 5, 2, 2, dtype=DT), filter="trilinear")
    torch.testing.assert_close(zero, lg.texture(tex, uv, filter="bilinear"), rtol=1e-14, atol=1e-14)


def test_trilinear_blends_two_levels_by_lod_fraction():
    # Footprint exactly 2^1.25 texels along u: 75 % of level 1 and 25 % of level 2.
    tex = _tex(8, 8, 1, seed=9)
    uv = torch.tensor([[[0.3, 0.6]]], dtype=DT)
    duv = torch.zeros(1, 1, 2, 2, dtype=DT)
    duv[..., 0, 0] = 2 ** 1.25 / 8
    levels = lg.build_mipmaps(tex)
    expect = 0.75 * lg.texture(levels[1], uv, filter="bilinear") + 0.25 * lg.texture(levels[2], uv, filter="bilinear")
    torch.testing.assert_close(lg.texture(tex, uv, uv_derivs=duv), expect, rtol=1e-14, atol=1e-14)
    # lod_bias shifts the level: bias 1 with half the footprint is the same level.
    torch.testing.assert_close(lg.texture(tex, uv, uv_derivs=duv / 2, lod_bias=1.0), expect, rtol=1e-14, atol=1e-14)
    # max_mip_level=1 stops at level 1; 0 is bilinear on the full texture.
    torch.testing.assert_close(lg.texture(tex, uv, uv_derivs=duv, max_mip_level=1),
                               lg.texture(levels[1], uv, filter="bilinear"), rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(lg.texture(tex, uv, uv_derivs=duv, max_mip_level=0),
                               lg.texture(tex, uv, filter="bilinear"), rtol=1e-14, atol=1e-14)
    # A prebuilt pyramid gives the same result.
    torch.testing.assert_close(lg.texture(tex, uv, uv_derivs=duv, mipmaps=levels), expect, rtol=1e-14, atol=1e-14)


def test_lod_uses_the_longer_screen_axis_in_texels():
    # Non-square texture: the v footprint is measured in rows (Ht), the u footprint in columns (Wt).
    tex = _tex(4, 16, 1, seed=10)
    uv = torch.tensor([[[0.3, 0.6]]], dtype=DT)
    levels = lg.build_mipmaps(tex)
    duv = torch.zeros(1, 1, 2, 2, dtype=DT)
    duv[..., 1, 1] = 2.0 / 4  # d v / d y = 2 rows -> lod 1
    duv[..., 0, 0] = 1.0 / 16  # d u / d x = 1 column -> lod 0 (smaller, ignored)
    torch.testing.assert_close(lg.texture(tex, uv, uv_derivs=duv), lg.texture(levels[1], uv, filter="bilinear"),
                               rtol=1e-14, atol=1e-14)


# -------------------------------------------------------------------------------------------- batched textures
@pytest.mark.parametrize("filter", ["nearest", "bilinear", "trilinear"])
def test_per_batch_textures(filter):
    h, w = 5, 7
    tex = _tex(h, w, 2, seed=20, batch=(3,))
    uv = _uv((3, 4, 6), h, w, seed=21, lo=-0.74, hi=1.74, away_from="edges" if filter == "nearest" else None)
    duv = _footprints((3, 4, 6), h, w, lod_lo=-1.0, lod_hi=4.0, seed=22)
    kw = dict(uv_derivs=duv) if filter == "trilinear" else {}
    out = lg.texture(tex, uv, filter=filter, wrap="mirror", **kw)
    assert out.shape == (3, 4, 6, 2)
    for k in range(3):
        kwk = dict(uv_derivs=duv[k]) if filter == "trilinear" else {}
        ref = texture_ref(tex[k], uv[k], filter=filter, wrap="mirror", **kwk)
        torch.testing.assert_close(out[k], ref, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(out[k], lg.texture(tex[k], uv[k], filter=filter, wrap="mirror", **kwk),
                                   rtol=0, atol=1e-15)


def test_two_batch_dims_per_batch_textures():
    tex = _tex(4, 6, 1, seed=23, batch=(2, 2))
    uv = _uv((2, 2, 3, 3), 4, 6, seed=24)
    out = lg.texture(tex, uv, wrap="repeat")
    for i in range(2):
        for j in range(2):
            torch.testing.assert_close(out[i, j], texture_ref(tex[i, j], uv[i, j], wrap="repeat"), rtol=1e-13,
                                       atol=1e-13)


def test_shared_texture_with_batched_uv():
    tex = _tex(5, 7, 3, seed=25)
    uv = _uv((2, 3, 4, 5), 5, 7, seed=26)
    out = lg.texture(tex, uv, wrap="clamp")
    assert out.shape == (2, 3, 4, 5, 3)
    torch.testing.assert_close(out, texture_ref(tex, uv, wrap="clamp"), rtol=1e-13, atol=1e-13)


# -------------------------------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("wrap", WRAPS)
def test_gradcheck_bilinear(wrap):
    tex = _tex(3, 4, 2, seed=30).requires_grad_()
    uv = _uv((2, 3), 3, 4, seed=31, away_from="centres", margin=0.1).requires_grad_()
    fn = lambda t, u: lg.texture(t, u, filter="bilinear", wrap=wrap)  # noqa: E731
    torch.autograd.gradcheck(fn, (tex, uv), eps=1e-7, atol=1e-8, rtol=1e-7)


@pytest.mark.parametrize("wrap", WRAPS)
def test_gradcheck_trilinear(wrap):
    tex = _tex(4, 4, 1, seed=32).requires_grad_()
    # Level 1 (2x2) has its kinks at u = 0.25, 0.75 and level 0 at 1/8, 3/8, ...: stay away from multiples of 1/8.
    uv = _uv((1, 3), 8, 8, seed=33, away_from="edges", margin=0.15).requires_grad_()
    duv = _footprints((1, 3), 4, 4, lod_lo=0.1, lod_hi=1.9, seed=34, avoid_integer_lod=True).requires_grad_()

    def fn(t, u, d):
        return lg.texture(t, u, uv_derivs=d, filter="trilinear", wrap=wrap)

    torch.autograd.gradcheck(fn, (tex, uv, duv), eps=1e-7, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("filter", ["bilinear", "trilinear"])
def test_backward_matches_reference(filter):
    tex = _tex(5, 7, 3, seed=35).requires_grad_()
    uv = _uv((6, 6), 5, 7, seed=36, lo=-0.74, hi=1.74, away_from="centres").requires_grad_()
    duv = _footprints((6, 6), 5, 7, lod_lo=-0.5, lod_hi=3.5, seed=37).requires_grad_()
    cot = torch.randn(6, 6, 3, generator=_gen(38), dtype=DT)
    kw = dict(uv_derivs=duv) if filter == "trilinear" else {}
    inputs = (tex, uv, duv) if filter == "trilinear" else (tex, uv)
    got = torch.autograd.grad((lg.texture(tex, uv, filter=filter, wrap="repeat", **kw) * cot).sum(), inputs)
    ref = torch.autograd.grad((texture_ref(tex, uv, filter=filter, wrap="repeat", **kw) * cot).sum(), inputs)
    for g, r in zip(got, ref):
        assert g.abs().sum() > 0
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-10)
        assert cosine(g, r) > 1 - 1e-12


def test_nearest_gives_texture_gradient_only():
    tex = _tex(4, 4, 1, seed=39).requires_grad_()
    uv = _uv((1, 3), 4, 4, seed=40, lo=0.05, hi=0.95, away_from="edges").requires_grad_()
    out = lg.texture(tex, uv, filter="nearest")
    out.sum().backward()
    assert uv.grad is None or (uv.grad == 0).all()
    # Each sample puts weight 1 on its texel.
    ij = (uv.detach()[0] * 4).floor().long()
    expect = torch.zeros(4, 4, dtype=DT)
    for c, r in ij.tolist():
        expect[r, c] += 1
    torch.testing.assert_close(tex.grad[..., 0], expect, rtol=0, atol=0)


# ------------------------------------------------------------------------------------------------ mipmaps
@pytest.mark.parametrize("size, sizes", [
    ((16, 16), [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]),
    ((5, 7), [(5, 7), (3, 4), (2, 2), (1, 1)]),
    ((1, 8), [(1, 8), (1, 4), (1, 2), (1, 1)]),
    ((12, 20), [(12, 20), (6, 10), (3, 5), (2, 3), (1, 2), (1, 1)]),
    ((1, 1), [(1, 1)]),
])
def test_build_mipmaps_level_sizes(size, sizes):
    levels = lg.build_mipmaps(_tex(*size, 2))
    assert [tuple(lv.shape[:2]) for lv in levels] == sizes
    assert all(lv.shape[-1] == 2 and lv.dtype == DT for lv in levels)


def test_build_mipmaps_max_levels_and_batch():
    tex = _tex(8, 8, 1, batch=(2, 3))
    levels = lg.build_mipmaps(tex, max_levels=2)
    assert [tuple(lv.shape) for lv in levels] == [(2, 3, 8, 8, 1), (2, 3, 4, 4, 1)]
    torch.testing.assert_close(levels[1][1, 2], lg.build_mipmaps(tex[1, 2])[1], rtol=0, atol=0)


def test_build_mipmaps_values_by_hand():
    # 3x5 texture with entries 10 r + c: odd rows / columns are averaged with what exists.
    r = torch.arange(3, dtype=DT)[:, None]
    c = torch.arange(5, dtype=DT)[None, :]
    tex = (10 * r + c)[..., None]
    l1, l2, l3 = lg.build_mipmaps(tex)[1:]
    expect1 = torch.tensor([[(0 + 1 + 10 + 11) / 4, (2 + 3 + 12 + 13) / 4, (4 + 14) / 2],
                            [(20 + 21) / 2, (22 + 23) / 2, 24.0]], dtype=DT)
    torch.testing.assert_close(l1[..., 0], expect1, rtol=0, atol=1e-14)
    expect2 = torch.tensor([[expect1[:, :2].mean(), expect1[:, 2].mean()]], dtype=DT)
    torch.testing.assert_close(l2[..., 0], expect2, rtol=0, atol=1e-14)
    torch.testing.assert_close(l3[..., 0], expect2.mean().reshape(1, 1), rtol=0, atol=1e-14)


def test_build_mipmaps_is_differentiable():
    tex = _tex(3, 2, 1, seed=41).requires_grad_()
    torch.autograd.gradcheck(lambda t: tuple(lg.build_mipmaps(t)), (tex,), eps=1e-7, atol=1e-9)


# ------------------------------------------------------------------------------------------------ wrap seams
@pytest.mark.parametrize("wrap", ["repeat", "mirror"])
def test_continuity_across_the_seam(wrap):
    h, w = 5, 7
    tex = _tex(h, w, 3, seed=42)
    eps = 1e-9
    v = torch.tensor([0.13, 0.5, 0.9], dtype=DT)
    for edge in (0.0, 1.0):
        a = torch.stack([torch.full_like(v, edge - eps), v], -1)[None]
        b = torch.stack([torch.full_like(v, edge + eps), v], -1)[None]
        for axis_swap in (False, True):
            ua, ub = (a.flip(-1), b.flip(-1)) if axis_swap else (a, b)
            fa = lg.texture(tex, ua, filter="bilinear", wrap=wrap)
            fb = lg.texture(tex, ub, filter="bilinear", wrap=wrap)
            # Piecewise linear with slope at most (max texel difference) * size per unit uv.
            bound = 2 * eps * max(h, w) * 1.0 + 1e-15
            assert float((fa - fb).abs().max()) <= bound


def test_repeat_is_periodic_and_mirror_reflects():
    tex = _tex(5, 7, 3, seed=43)
    uv = _uv((4, 4), 5, 7, seed=44, lo=0.0, hi=1.0)
    base = lg.texture(tex, uv, wrap="repeat")
    for shift in ([1.0, 0.0], [0.0, -1.0], [-1.0, 1.0]):
        moved = lg.texture(tex, uv + torch.tensor(shift, dtype=DT), wrap="repeat")
        torch.testing.assert_close(moved, base, rtol=0, atol=1e-13)
    # u = -eps and u = 1 - eps are the same point under repeat.
    eps = 1e-3
    a = lg.texture(tex, torch.tensor([[[-eps, 0.3]]], dtype=DT), wrap="repeat")
    b = lg.texture(tex, torch.tensor([[[1 - eps, 0.3]]], dtype=DT), wrap="repeat")
    torch.testing.assert_close(a, b, rtol=0, atol=1e-14)
    # Mirror: u and -u agree; u and 2 - u agree.
    m = lg.texture(tex, uv, wrap="mirror")
    torch.testing.assert_close(lg.texture(tex, -uv, wrap="mirror"), m, rtol=0, atol=1e-13)
    torch.testing.assert_close(lg.texture(tex, 2 - uv, wrap="mirror"), m, rtol=0, atol=1e-13)
    # On the seam itself: repeat averages the first and last column, mirror and clamp give the edge texel.
    row = 2
    seam = torch.tensor([[[0.0, (row + 0.5) / 5]]], dtype=DT)
    torch.testing.assert_close(lg.texture(tex, seam, wrap="repeat")[0, 0], 0.5 * (tex[row, 0] + tex[row, -1]),
                               rtol=0, atol=1e-15)
    torch.testing.assert_close(lg.texture(tex, seam, wrap="mirror")[0, 0], tex[row, 0], rtol=0, atol=1e-15)
    torch.testing.assert_close(lg.texture(tex, seam, wrap="clamp")[0, 0], tex[row, 0], rtol=0, atol=1e-15)


def test_clamp_extends_edge_texels():
    tex = _tex(5, 7, 2, seed=45)
    uv = torch.tensor([[[-3.0, 0.3], [5.0, 0.3], [0.4, -2.0], [0.4, 7.5], [-1.0, -1.0]]], dtype=DT)
    out = lg.texture(tex, uv, wrap="clamp")[0]
    inner = lg.texture(tex, torch.tensor([[[0.5 / 7, 0.3], [1 - 0.5 / 7, 0.3], [0.4, 0.5 / 5], [0.4, 1 - 0.5 / 5]]],
                                          dtype=DT), wrap="clamp")[0]
    torch.testing.assert_close(out[:4], inner, rtol=0, atol=1e-14)
    torch.testing.assert_close(out[4], tex[0, 0], rtol=0, atol=1e-15)


def test_float32_matches_float64():
    tex = _tex(5, 7, 3, seed=46)
    uv = _uv((4, 5), 5, 7, seed=47)
    duv = _footprints((4, 5), 5, 7, lod_lo=-1, lod_hi=4, seed=48)
    out32 = lg.texture(tex.float(), uv.float(), uv_derivs=duv.float())
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), lg.texture(tex, uv, uv_derivs=duv), rtol=0, atol=2e-5)


def test_nan_texture_or_uv_raises():
    tex = _tex(3, 3, 1)
    uv = _uv((1, 2), 3, 3)
    bad = tex.clone()
    bad[1, 1, 0] = float("nan")
    with pytest.raises(ValueError, match="tex"):
        lg.texture(bad, uv)
    bad_uv = uv.clone()
    bad_uv[0, 0, 1] = float("inf")
    with pytest.raises(ValueError, match="uv"):
        lg.texture(tex, bad_uv)
    with pytest.raises(ValueError, match="uv_derivs"):
        lg.texture(tex, uv, uv_derivs=torch.full((1, 2, 2, 2), float("nan"), dtype=DT))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finiteness_check_by_sum_agrees_with_the_elementwise_test(dtype):
    """check_tensor(finite=True) screens by one sum: its verdict equals the elementwise test's."""
    from lumigrad._checks import check_tensor

    big = torch.finfo(dtype).max
    ok = torch.tensor([big, big, -1.0, 3.0], dtype=dtype)  # finite, but the sum overflows: elementwise test runs
    assert check_tensor(ok, "uv", finite=True) is ok
    for bad in (float("nan"), float("inf"), -float("inf")):
        for base in (torch.zeros(6, dtype=dtype), ok.clone()):
            x = base.clone()
            x[2] = bad
            with pytest.raises(ValueError, match="uv contains NaN or Inf"):
                check_tensor(x, "uv", finite=True)
    both = torch.tensor([float("inf"), -float("inf"), 1.0], dtype=dtype)  # inf - inf: the sum is NaN
    with pytest.raises(ValueError, match="uv"):
        check_tensor(both, "uv", finite=True)
    assert check_tensor(torch.empty(0, dtype=dtype), "uv", finite=True).numel() == 0


def test_mipmaps_must_match_the_texture():
    tex = _tex(4, 4, 2)
    uv = _uv((1, 2), 4, 4)
    duv = _footprints((1, 2), 4, 4, lod_lo=0.2, lod_hi=1.8, seed=3)
    with pytest.raises(ValueError, match="mipmaps"):
        lg.texture(tex, uv, uv_derivs=duv, mipmaps=lg.build_mipmaps(_tex(16, 16, 2)))


def test_constant_texture_tables_are_reused_until_the_texture_changes():
    import importlib

    texture_module = importlib.import_module("lumigrad.raster.texture")  # the module, not the function

    tex = torch.rand(8, 8, 3)
    uv = torch.rand(1, 5, 2)
    duv = torch.full((1, 5, 2, 2), 0.2)
    first = lg.texture(tex, uv, uv_derivs=duv)
    assert id(tex) in texture_module._TABLES
    tex.mul_(0.5)  # in place: the version counter moves on, the cached pyramid must not be used
    assert torch.allclose(lg.texture(tex, uv, uv_derivs=duv), first * 0.5)
    assert torch.equal(lg.texture(tex, uv, filter="bilinear"), lg.texture(tex.clone(), uv, filter="bilinear"))
    key = id(tex)
    del tex
    assert key not in texture_module._TABLES  # dropped with the tensor
    trained = torch.rand(8, 8, 3, requires_grad=True)
    lg.texture(trained, uv)
    assert id(trained) not in texture_module._TABLES  # textures being optimised are never cached


def test_prebuilt_pyramid_is_checked_and_flattened_once_until_a_level_changes(monkeypatch):
    import importlib

    texture_module = importlib.import_module("lumigrad.raster.texture")
    checks = []
    real_check = texture_module.check_all_finite
    monkeypatch.setattr(texture_module, "check_all_finite", lambda *a: checks.append(1) or real_check(*a))
    tex = torch.rand(8, 8, 3)
    levels = lg.build_mipmaps(tex)
    uv = torch.rand(1, 5, 2)
    duv = torch.full((1, 5, 2, 2), 0.3)
    first = lg.texture(tex, uv, uv_derivs=duv, mipmaps=levels)
    second = lg.texture(tex, uv, uv_derivs=duv, mipmaps=levels)
    assert len(checks) == 1  # the second call reused the checked, flattened table
    assert torch.equal(first, second)
    torch.testing.assert_close(first, lg.texture(tex, uv, uv_derivs=duv), rtol=0, atol=1e-6)
    levels[1].mul_(0.5)  # in place: that level's version moves on, the table is rebuilt from the new values
    changed = lg.texture(tex, uv, uv_derivs=duv, mipmaps=levels)
    assert len(checks) == 2 and not torch.equal(changed, first)
    fresh = [t.clone() for t in levels]
    torch.testing.assert_close(changed, lg.texture(tex, uv, uv_derivs=duv, mipmaps=fresh), rtol=0, atol=0)
    levels[2][0, 0, 1] = float("nan")  # bad input written in place must still raise
    with pytest.raises(ValueError, match=r"mipmaps\[2\]"):
        lg.texture(tex, uv, uv_derivs=duv, mipmaps=levels)
    with pytest.raises(ValueError, match=r"mipmaps\[2\]"):
        lg.texture(tex, uv, uv_derivs=duv, mipmaps=levels)
    key = id(tex)
    assert key in texture_module._PYRAMIDS
    del tex, levels  # (levels[0] is tex itself)
    assert key not in texture_module._PYRAMIDS  # dropped with the texture
    trained = torch.rand(8, 8, 3, requires_grad=True)
    lg.texture(trained, uv, uv_derivs=duv, mipmaps=lg.build_mipmaps(trained))
    assert id(trained) not in texture_module._PYRAMIDS  # pyramids with a graph are never cached


def _large_trainable(dtype=torch.float32, seed=0):
    """A texture big enough to be cached while it requires gradients (GRAD_CACHE_MIN_ELEMENTS)."""
    import importlib

    texture_module = importlib.import_module("lumigrad.raster.texture")
    side = int(math.ceil(math.sqrt(texture_module.GRAD_CACHE_MIN_ELEMENTS / 4)))
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(side, side + 2, 4, dtype=dtype, generator=gen).requires_grad_(True), texture_module


def _trilinear_inputs(dtype, n=40, seed=2):
    gen = torch.Generator().manual_seed(seed)
    uv = (torch.rand(1, n, 2, dtype=dtype, generator=gen) * 1.4 - 0.2).requires_grad_(True)
    duv = (torch.rand(1, n, 2, 2, dtype=dtype, generator=gen) * 0.05).requires_grad_(True)
    return uv, duv


def _grads(tex, uv, duv, transform=None):
    for t in (tex, uv, duv):
        t.grad = None
    out = lg.texture(tex, uv, uv_derivs=duv, texel_transform=transform)
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
    (out * weights).sum().backward()
    return out.detach(), tex.grad.clone(), uv.grad.clone(), duv.grad.clone()


def test_trainable_texture_pyramid_is_built_once_per_texel_update(monkeypatch):
    tex, texture_module = _large_trainable()
    builds = []
    real_build = texture_module._build_values
    monkeypatch.setattr(texture_module, "_build_values", lambda *a: builds.append(1) or real_build(*a))
    uv, duv = _trilinear_inputs(torch.float32)
    first = _grads(tex, uv, duv)
    second = _grads(tex, uv, duv)
    assert len(builds) == 1  # the second render reused the cached pyramid
    for a, b in zip(first, second):
        assert torch.equal(a, b)
    torch.optim.SGD([tex], lr=10.0).step()  # in place: bumps tex._version
    after_step = _grads(tex, uv, duv)
    assert len(builds) == 2
    assert not torch.equal(after_step[0], first[0])
    with texture_module.texel_cache(False):
        fresh = _grads(tex, uv, duv)
    assert len(builds) == 2  # the cache was bypassed, not refilled
    assert torch.equal(after_step[0], fresh[0])
    for a, b in zip(after_step[1:], fresh[1:]):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("transform", [None, lg.shading.srgb_decode])
def test_cached_trainable_texture_gradients_equal_uncached_float64(transform):
    tex, texture_module = _large_trainable(DT, seed=3)
    uv, duv = _trilinear_inputs(DT, seed=4)
    cached_first = _grads(tex, uv, duv, transform)
    cached = _grads(tex, uv, duv, transform)  # a cache hit
    with texture_module.texel_cache(False):
        reference = _grads(tex, uv, duv, transform)
    for a, b in zip(cached, reference):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    for a, b in zip(cached_first, cached):
        assert torch.equal(a, b)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("filter", ["bilinear", "trilinear"])
def test_kernel_gradients_of_a_cached_texture_match_the_twin_and_are_never_reused(filter, threads, monkeypatch):
    """The kernel's table gradient of a cached pyramid is kept scratch between backwards (per-thread partial
    tables with 2 threads: 40k unmasked samples): the returned ``tex.grad`` must be the torch twin's and must not
    change when the next backward reuses the scratch."""
    monkeypatch.setenv("LUMIGRAD_NUM_THREADS", str(threads))
    tex, texture_module = _large_trainable()
    gen = torch.Generator().manual_seed(7)
    uv = (torch.rand(1, 48000, 2, generator=gen) * 1.4 - 0.2).requires_grad_(True)
    duv = (torch.rand(1, 48000, 2, 2, generator=gen) * 0.05).requires_grad_(True)
    mask = torch.rand(1, 48000, generator=gen) < 0.85
    kw = dict(uv_derivs=duv) if filter == "trilinear" else {}
    weights = torch.linspace(-1, 1, 48000 * 4).reshape(1, 48000, 4)

    def grads(backend):
        tex.grad = None
        (lg.texture(tex, uv, filter=filter, mask=mask, backend=backend, **kw) * weights).sum().backward()
        return tex.grad

    first = grads("kernel")
    kept = first.clone()
    second = grads("kernel")
    assert torch.equal(first, kept)  # not overwritten by the second backward
    assert torch.equal(second, kept)
    torch.testing.assert_close(second, grads("torch"), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("threads", [1, 2])
def test_kernel_gradients_from_coarse_levels_only_match_the_twin_after_a_fine_backward(threads, monkeypatch):
    """A backward whose samples read only coarse levels (lod >= 2) zeroes, sums and spreads only those levels
    of the scratch table, after a backward that wrote level 0 there: the left-over rows must not leak in."""
    monkeypatch.setenv("LUMIGRAD_NUM_THREADS", str(threads))
    tex, _ = _large_trainable()
    gen = torch.Generator().manual_seed(8)
    uv = (torch.rand(1, 40000, 2, generator=gen) * 1.4 - 0.2).requires_grad_(True)
    weights = torch.linspace(-1, 1, 40000 * 4).reshape(1, 40000, 4)
    for footprint in (0.3, 6.0, 0.3):  # in texels: level 0 (with 1), levels >= 2, level 0 again
        duv = torch.zeros(1, 40000, 2, 2)
        duv[..., 0, 0] = footprint * (1 + torch.rand(1, 40000, generator=gen)) / tex.shape[1]
        duv.requires_grad_(True)
        grads = []
        for backend in ("kernel", "torch"):
            tex.grad = uv.grad = duv.grad = None
            (lg.texture(tex, uv, uv_derivs=duv, backend=backend) * weights).sum().backward()
            grads.append((tex.grad, uv.grad, duv.grad))
        (t_k, u_k, d_k), (t_t, u_t, d_t) = grads
        torch.testing.assert_close(t_k, t_t, rtol=1e-5, atol=1e-5)
        # uv / duv gradients are ~W = 130 times the texel differences: float32 sums in another order
        torch.testing.assert_close(u_k, u_t, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(d_k, d_t, rtol=1e-4, atol=1e-4)


def test_texture_cache_follows_data_assignment():
    tex, texture_module = _large_trainable()
    uv, duv = _trilinear_inputs(torch.float32)
    before = lg.texture(tex, uv, uv_derivs=duv)
    tex.data = torch.rand_like(tex)  # a new storage: the version counter does not move, the data pointer does
    after = lg.texture(tex, uv, uv_derivs=duv)
    with texture_module.texel_cache(False):
        assert torch.equal(after, lg.texture(tex, uv, uv_derivs=duv))
    assert not torch.equal(before, after)


def test_texel_transform_is_refused_with_explicit_mipmaps():
    tex = _tex(4, 4, 2)
    uv = _uv((1, 2), 4, 4)
    duv = _footprints((1, 2), 4, 4, lod_lo=0.2, lod_hi=1.8, seed=3)
    with pytest.raises(ValueError, match="texel_transform"):
        lg.texture(tex, uv, uv_derivs=duv, mipmaps=lg.build_mipmaps(tex), texel_transform=torch.sqrt)
    with pytest.raises(TypeError, match="texel_transform"):
        lg.texture(tex, uv, texel_transform="srgb")


def test_pooled_kernel_output_can_be_modified_in_place_and_its_buffer_is_not_reused_while_held():
    """The kernel's output of 90k RGBA samples (over a MiB) comes from the CPU buffer pool: it may be changed in
    place under autograd like any fresh tensor, and a second call does not write into it while it is held."""
    tex, _ = _large_trainable()
    gen = torch.Generator().manual_seed(9)
    uv = torch.rand(1, 90000, 2, generator=gen)
    mask = torch.rand(1, 90000, generator=gen) < 0.8
    weights = torch.linspace(-1, 1, 90000 * 4).reshape(1, 90000, 4)
    out = lg.texture(tex, uv, mask=mask, backend="kernel")
    kept = out.detach().clone()
    again = lg.texture(tex, uv * 0.5, mask=mask, backend="kernel")
    assert torch.equal(out, kept) and not torch.equal(again, kept)
    out.mul_(3.0)
    (out * weights).sum().backward()
    got = tex.grad
    tex.grad = None
    (lg.texture(tex, uv, mask=mask, backend="torch") * 3.0 * weights).sum().backward()
    torch.testing.assert_close(got, tex.grad, rtol=1e-5, atol=1e-5)
