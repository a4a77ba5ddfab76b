"""The fused surface and interpolation kernels against their PyTorch twins (rasterize.FUSED_SURFACE,
interpolate.FUSED_INTERPOLATE): values and gradients to verts, K, world_to_cam and the attributes, through a
pipeline with silhouettes (antialias), in float32 and float64, perspective and orthographic, one thread and
several (per-thread partial gradient buffers)."""

import importlib

import pytest
import torch

import lumigrad as lg
from lumigrad.cameras.projection import K_orthographic

from ..conftest import uv_sphere

rasterize_module = importlib.import_module("lumigrad.raster.rasterize")
interpolate_module = importlib.import_module("lumigrad.raster.interpolate")
surface_glue = importlib.import_module("lumigrad.kernels.surface")

TOL = {torch.float32: 1e-5, torch.float64: 1e-12}


def _scene(dtype, projection):
    """A sphere in front of a tilted random triangle soup (occlusion and boundary silhouettes), two views."""
    g = torch.Generator().manual_seed(3)
    sphere_v, sphere_f = uv_sphere(5, 9, radius=0.7)
    soup_v = torch.randn(24, 3, generator=g, dtype=torch.float64) * 0.8 + torch.tensor([0.2, 0.0, 0.9])
    soup_f = torch.arange(24).reshape(8, 3) + sphere_v.shape[0]
    verts = torch.cat([sphere_v, soup_v]).to(dtype)
    faces = torch.cat([sphere_f, soup_f])
    eyes = torch.tensor([[0.4, 0.3, -3.0], [-1.0, 0.6, -2.6]], dtype=torch.float64)
    look = lg.Camera.look_at(eyes, torch.zeros(2, 3, dtype=torch.float64),
                             torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), fov_y=0.8, width=28, height=22)
    K = look.K if projection == "perspective" else K_orthographic(2.6, 28, 22, dtype=torch.float64).expand(2, 3, 3)
    attrs = torch.randn(verts.shape[0], 4, generator=g, dtype=torch.float64).to(dtype)
    return verts, faces, K.to(dtype), look.world_to_cam.to(dtype), attrs


def _run(fused, dtype, projection):
    verts, faces, K, w2c, attrs = _scene(dtype, projection)
    rasterize_module.FUSED_SURFACE = fused
    interpolate_module.FUSED_INTERPOLATE = fused
    leaves = [t.clone().requires_grad_(True) for t in (verts, K, w2c, attrs)]
    verts, K, w2c, attrs = leaves
    cam = lg.Camera(K=K, world_to_cam=w2c, width=28, height=22, projection=projection)
    frags = lg.rasterize(verts, faces, cam, return_bary_derivs=True)
    color, dcolor = lg.interpolate(attrs, frags, faces, return_derivatives=True)
    view_attrs = torch.stack([attrs, 2 * attrs])  # one table per view
    unblended = lg.interpolate(view_attrs, frags, faces) + color.sin()
    shaded = lg.antialias(unblended, frags, verts, faces, cam)
    assert (shaded != unblended).any()  # silhouettes: visibility gradients are part of the comparison
    outputs = [frags.bary_covered, frags.depth_covered, frags.bary_derivs_covered, color, dcolor, shaded]
    g = torch.Generator().manual_seed(5)
    loss = sum((o * torch.randn(o.shape, generator=g, dtype=torch.float64).to(dtype)).sum() for o in outputs)
    return outputs, torch.autograd.grad(loss, leaves), frags.covered


@pytest.fixture
def restore_switches():
    yield
    rasterize_module.FUSED_SURFACE = True
    interpolate_module.FUSED_INTERPOLATE = True


def _assert_equal_to(tol, fused, reference, what):
    scale = max(float(reference.detach().abs().max()), 1.0)
    err = float((fused.detach() - reference.detach()).abs().max())
    assert err <= tol * scale, f"{what}: fused differs from the PyTorch twin by {err:.3g} (scale {scale:.3g})"


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("projection", ["perspective", "orthographic"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_matches_pytorch_twin(dtype, projection, threads, monkeypatch, restore_switches):
    monkeypatch.setenv("LUMIGRAD_NUM_THREADS", str(threads))
    monkeypatch.setattr(surface_glue, "_MIN_PIXELS_PER_THREAD", 16)  # several partial buffers on a tiny image
    ref_out, ref_grad, ref_covered = _run(False, dtype, projection)
    out, grad, covered = _run(True, dtype, projection)
    assert torch.equal(covered, ref_covered) and covered.numel() > 200
    names = ["bary", "depth", "bary_derivs", "interpolated", "interpolated derivatives", "antialiased"]
    for name, a, b in zip(names, out, ref_out):
        assert a.dtype == b.dtype and a.shape == b.shape
        _assert_equal_to(TOL[dtype], a, b, name)
    for name, a, b in zip(["verts", "K", "world_to_cam", "attrs"], grad, ref_grad):
        assert b.abs().max() > 0, f"the twin gives no gradient to {name}"
        _assert_equal_to(TOL[dtype], a, b, f"d loss / d {name}")


def test_fused_path_is_the_default():
    assert rasterize_module.FUSED_SURFACE and interpolate_module.FUSED_INTERPOLATE


def test_gradient_of_bary_alone_and_of_attrs_alone(restore_switches):
    # Outputs without a cotangent (depth, derivatives) and inputs without requires_grad take the short paths.
    verts, faces, K, w2c, attrs = _scene(torch.float64, "perspective")
    cam = lg.Camera(K=K, world_to_cam=w2c, width=28, height=22)
    results = []
    for fused in (False, True):
        rasterize_module.FUSED_SURFACE = interpolate_module.FUSED_INTERPOLATE = fused
        v = verts.clone().requires_grad_(True)
        a = attrs.clone().requires_grad_(True)
        frags = lg.rasterize(v, faces, cam, return_bary_derivs=True)
        gv, = torch.autograd.grad(frags.bary_covered[:, 1].sum(), v)
        ga, = torch.autograd.grad(lg.interpolate(a, frags, faces, return_derivatives=True)[1].sum(), a)
        results.append((gv, ga))
    for a, b in zip(*results):
        _assert_equal_to(1e-12, b, a, "gradient")



def test_layer_without_covered_pixels(restore_switches):
    # A second depth-peeling layer of one square is empty: the kernels get no pixel, gradients are zero.
    verts = torch.tensor([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [1.0, 1.0, 0.0], [-1.0, 1.0, 0.0]],
                         dtype=torch.float64, requires_grad=True)
    faces = torch.tensor([[0, 2, 1], [0, 3, 2]])
    cam = lg.Camera.look_at(torch.tensor([0.1, 0.05, -2.5], dtype=torch.float64), torch.zeros(3, dtype=torch.float64),
                            torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), fov_y=1.2, width=10, height=8)
    first, second = lg.depth_peel(verts, faces, cam, 2, return_bary_derivs=True)
    assert first.covered.numel() > 0 and second.covered.numel() == 0
    attrs = verts.detach().clone().requires_grad_(True)
    image, derivs = lg.interpolate(attrs, second, faces, return_derivatives=True)
    loss = second.bary.sum() + second.depth.sum() + second.bary_derivs.sum() + image.sum() + derivs.sum()
    g_verts, g_attrs = torch.autograd.grad(loss, [verts, attrs], allow_unused=True)
    for g in (g_verts, g_attrs):
        assert g is None or (g == 0).all()
