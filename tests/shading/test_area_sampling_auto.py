"""``method="auto"`` of area-light sampling: by area from points beyond ``AUTO_AREA_DISTANCE`` bounding radii of
the lamp, by solid angle nearer (each method is checked on its own, chi-square and unbiasedness, in
``test_emitter_sampling.py``); the choice is the point's alone, so the sample and the density agree, and the
area table the fused kernel reads is the one the sampler picks triangles by."""

import pytest
import torch

import lumigrad as lg
from lumigrad.shading.emitters import (AUTO_AREA_DISTANCE, area_light_area_table, area_light_bounds, area_light_pdf,
                                       area_light_sample_direct)

DT = torch.float64
# A V-shaped lamp of 4 triangles (test_emitter_sampling.py's): its box is [-1, 1] x [-1, 1] x [0.8, 1.2]
VERTS = torch.tensor([[-1, -1, 1.2], [-1, 1, 1.2], [0, -1, 0.8], [0, 1, 0.8], [1, -1, 1.2], [1, 1, 1.2]], dtype=DT)
FACES = torch.tensor([[0, 1, 2], [1, 3, 2], [2, 3, 4], [3, 5, 4]])
RADIANCE = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [4.0, 0.5, 1.0], [4.0, 0.5, 1.0]], dtype=DT)


def _points():
    """Shading points below the lamp, from 0.5 to 12 bounding radii of its centre (0, 0, 1)."""
    r = float(area_light_bounds(VERTS, FACES)[1])
    heights = torch.linspace(0.5, 12.0, 24, dtype=DT) * r
    return torch.stack([0.1 * torch.ones_like(heights), -0.2 * torch.ones_like(heights), 1.0 - heights], -1)


def test_bounds_and_area_table():
    centre, radius = area_light_bounds(VERTS, FACES)
    torch.testing.assert_close(centre, torch.tensor([0.0, 0.0, 1.0], dtype=DT))
    assert float(radius) == float(torch.tensor([1.0, 1.0, 0.2], dtype=DT).norm())
    cdf, area = area_light_area_table(VERTS, FACES)
    panel = 2 * float(torch.tensor([1.0, 0.4], dtype=DT).norm())  # each quad: 2 x sqrt(1 + 0.4^2)
    assert abs(float(area) - 2 * panel) < 1e-12
    torch.testing.assert_close(cdf, torch.tensor([0.25, 0.5, 0.75, 1.0], dtype=DT))


def test_auto_is_area_far_and_solid_angle_near():
    x = _points()
    u = torch.rand(x.shape[0], 2, generator=torch.Generator().manual_seed(1), dtype=DT)
    centre, radius = area_light_bounds(VERTS, FACES)
    far = (x - centre).norm(dim=-1) > AUTO_AREA_DISTANCE * radius
    assert 0 < int(far.sum()) < x.shape[0]
    auto = area_light_sample_direct(x, VERTS, FACES, RADIANCE, u, method="auto")
    for method, rows in (("area", far), ("solid_angle", ~far)):
        s = area_light_sample_direct(x, VERTS, FACES, RADIANCE, u, method=method)
        for a, b in zip(auto[:4], s[:4]):
            assert torch.equal(a[rows], b[rows])
        wi = torch.tensor([0.05, 0.1, 1.0], dtype=DT).expand_as(x)
        assert torch.equal(area_light_pdf(x, wi, VERTS, FACES, method="auto")[rows],
                           area_light_pdf(x, wi, VERTS, FACES, method=method)[rows])
        # points all on one side: the one method alone, the same bits
        alone = area_light_sample_direct(x[rows], VERTS, FACES, RADIANCE, u[rows], method="auto")
        for a, b in zip(alone[:4], s[:4]):
            assert torch.equal(a, b[rows])


def test_auto_weight_is_eval_over_pdf():
    x = _points()
    light = lg.AreaLight(VERTS, FACES, RADIANCE)
    u = torch.rand(x.shape[0], 2, generator=torch.Generator().manual_seed(2), dtype=DT)
    s = light.sample_direct(x, u, method="auto")
    ok = s.pdf[:, 0] > 0
    assert bool(ok.all())
    torch.testing.assert_close(s.pdf, light.pdf(x, s.wi, method="auto"), rtol=1e-9, atol=0)
    torch.testing.assert_close(s.weight, light.eval(x, s.wi) / s.pdf, rtol=1e-9, atol=0)


def test_gradcheck_auto_on_both_sides_of_the_threshold():
    verts = VERTS.clone().requires_grad_(True)
    radiance = torch.tensor([1.0, 2.0], dtype=DT, requires_grad=True)
    x = torch.tensor([[0.1, -0.2, 0.0], [0.3, 0.1, -8.0]], dtype=DT, requires_grad=True)  # near, far
    wi = torch.tensor([[0.1, 0.2, 1.0], [0.01, -0.02, 1.0]], dtype=DT)
    u = torch.tensor([[0.3, 0.6], [0.8, 0.1]], dtype=DT)
    assert torch.autograd.gradcheck(lambda v, p: area_light_pdf(p, wi, v, FACES, method="auto"), (verts, x))
    assert torch.autograd.gradcheck(
        lambda v, p, r: area_light_sample_direct(p, v, FACES, r, u, method="auto")[:4], (verts, x, radiance))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("method", ["area", "auto", "solid_angle"])
def test_a_lamp_of_no_area_gives_zero_density_and_weight_not_nan(method, dtype):
    """A lamp collapsed to a line (all its triangles of zero area) casts no light: every strategy returns density
    0 and weight 0 with finite gradients (sampling by area divided by the area before: an infinite density and,
    through the power heuristic, NaN light)."""
    verts = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 1.0], [2.0, 0.0, 1.0]], dtype=dtype, requires_grad=True)
    faces = torch.tensor([[0, 1, 2]])
    x = torch.tensor([[0.0, 0.0, 0.0], [30.0, 0.0, -40.0]], dtype=dtype)  # near and far (auto: both strategies)
    ds = area_light_sample_direct(x, verts, faces, torch.tensor([1.0], dtype=dtype),
                                  torch.tensor([[0.3, 0.6], [0.8, 0.1]], dtype=dtype), method=method)
    assert torch.equal(ds.pdf, torch.zeros_like(ds.pdf)) and torch.equal(ds.weight.abs(), torch.zeros_like(ds.weight))
    ds.weight.sum().backward()
    assert torch.isfinite(verts.grad).all()
    wi = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]], dtype=dtype)
    assert torch.equal(area_light_pdf(x, wi, verts, faces, method=method), torch.zeros(2, 1, dtype=dtype))
