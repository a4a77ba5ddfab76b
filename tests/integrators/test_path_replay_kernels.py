"""The path replay's Warp twins (:class:`lumigrad.kernels.replay_kernels.ReplayKernels`: the detached primal
area-light next-event term, the BSDF samples) against the PyTorch references (``transport._next_event`` under
``no_grad``, ``bsdf.sample``), and the gradients the integrator gets with either."""

import pytest
import torch

import lumigrad as lg
import lumigrad.integrators.path as path_module
from lumigrad.integrators.fused_paths import fused_unsupported, path_tables
from lumigrad.integrators.path import _camera_rays, _trace_scene
from lumigrad.kernels.bvh import bvh_for
from lumigrad.kernels.counter_rng import uniform_counter
from lumigrad.kernels.replay_kernels import ReplayKernels
from lumigrad.raytrace.area_next_event import area_light_indices
from lumigrad.raytrace.transport import _next_event, light_methods, surface_at
from lumigrad.shading.transmission import bsdf_for

from .test_fused_paths import BRANCH_FRACTION, RAY_RTOL, SCENES

F32 = torch.float32


def _vertices(name, light_sampling):
    """The first surface vertices of a scene's camera rays, as the replay sees them."""
    scene, cam = SCENES[name]()
    ts = _trace_scene(scene, light_sampling)
    assert fused_unsupported(ts) is None
    o, d = _camera_rays(cam, 4, 3, F32)
    bvh = bvh_for(ts.verts.detach(), ts.faces)
    face, _, _ = bvh.closest_hit(o, d)
    rows = (face >= 0).nonzero()[:, 0]
    si, _, ng, _ = surface_at(ts, face[rows], o[rows], d[rows])
    return ts, bvh, rows, si, ng


@pytest.mark.parametrize("name", ["cornell", "metal", "textured", "specular", "beckmann", "plastic",
                                  "principled"])  # (the
# "mixed" lamp lights no first hit)
@pytest.mark.parametrize("light_sampling", ["solid_angle", "area", "auto"])
@pytest.mark.parametrize("depth", [0, 3])
def test_the_kernel_computes_the_reference_next_event_term(name, light_sampling, depth):
    ts, bvh, rows, si, ng = _vertices(name, light_sampling)
    lights = area_light_indices(ts)
    assert lights
    seed = 2 * 12345 + 1
    paths = rows * 3 + 5  # path ids other than the rows: the kernel must draw path paths[i]'s numbers
    with torch.no_grad():
        u = uniform_counter(seed, paths, depth, 4 + 2 * len(ts.lights), F32)
        ref = _next_event(ts, bvh, bsdf_for(si), si, ng, u[:, 4:], F32, lights, None, light_methods(ts))
        out = ReplayKernels(path_tables(ts)).area_next_event(bvh, lights,
                                                             ReplayKernels.vertices(paths, depth, seed, si, ng))
    assert out.dtype == F32 and out.shape == ref.shape
    assert float((ref.abs().sum(-1) > 0).float().mean()) > 0.2  # many vertices see the lamp
    scale = ref.abs().amax(-1).clamp_min(max(1e-2 * float(ref.abs().mean()), 1e-12))
    rel = (out - ref).abs().amax(-1) / scale
    # float32 rounding as between the fused primal and its twin (the spherical triangle's sampling the most,
    # 99th percentile ~7e-5 here); a shadow ray grazing an edge or a triangle pick at a tie may fall the other way
    assert float((rel > RAY_RTOL).float().mean()) <= BRANCH_FRACTION
    assert torch.allclose(out.mean(0), ref.mean(0), rtol=1e-4)


def test_no_vertices_or_no_lights_give_zeros():
    ts, bvh, rows, si, ng = _vertices("cornell", "auto")
    kernels = ReplayKernels(path_tables(ts))
    empty = kernels.vertices(rows[:0], 0, 1, si.map(lambda t: t[:0]), ng[:0])
    assert kernels.area_next_event(bvh, [0], empty).shape == (0, 3)
    at = kernels.vertices(rows, 0, 1, si, ng)
    assert torch.equal(kernels.area_next_event(bvh, [], at), torch.zeros(rows.shape[0], 3))
    assert [x.shape for x in kernels.bsdf_sample(empty)] == [(0, 3), (0, 3), (0,)]
    bsdf_only = kernels.vertices(rows, 0, 1, si)  # packed for the BSDF sample only: no position, no normals
    assert bsdf_only.position is None and bsdf_only.geo_normal is None and at.position is not None
    with pytest.raises(ValueError, match="geometric normals"):
        kernels.area_next_event(bvh, [0], bsdf_only)


@pytest.mark.parametrize("name", ["cornell", "punctual", "metal", "textured", "specular", "beckmann", "plastic",
                                  "principled"])
@pytest.mark.parametrize("depth", [0, 3])
def test_the_kernel_draws_the_reference_bsdf_samples(name, depth):
    ts, bvh, rows, si, ng = _vertices(name, "auto")
    seed = 2 * 777
    paths = rows * 2 + 1
    with torch.no_grad():
        u = uniform_counter(seed, paths, depth, 3, F32)
        ref = bsdf_for(si).sample(si, u[:, 0:1], u[:, 1:3])
        wi, weight, pdf = ReplayKernels(path_tables(ts)).bsdf_sample(ReplayKernels.vertices(paths, depth, seed, si))
    assert ref.is_delta is None  # opaque materials: no delta lobe, as the kernel assumes
    assert float((ref.pdf > 0).float().mean()) > 0.5
    # the same direction (float32 rounding), a lobe choice at a tie apart; where neither sample is valid (a
    # surface seen from behind: density 0, the path ends) the direction is not used, and float32 may bend it more
    used = (ref.pdf[:, 0] > 0) | (pdf > 0)
    same = (wi - ref.wi).abs().amax(-1) < 1e-5
    assert float((~same & used).float().mean()) <= BRANCH_FRACTION
    # where the paths go on: the kernel's density positive, as the reference's (float32 rounding at a tie apart)
    assert float(((pdf > 0) != (ref.pdf[:, 0] > 0))[same].float().mean()) <= BRANCH_FRACTION
    # against the float64 reference: the same weight and density (float32 rounding; the density's GGX term in
    # the twin's stable form, also on this textured scene's glossy lobes, alpha = roughness^2 ~ 2e-3)
    s64 = si.map(lambda t: t.double())
    with torch.no_grad():
        ref64 = bsdf_for(s64).sample(s64, u[:, 0:1].double(), u[:, 1:3].double())
    same = same & ((ref64.wi - ref.wi).abs().amax(-1) < 1e-5)
    if si.plastic is not None:  # a smooth plastic's lobe (alpha 1e-3, standing in for Mitsuba's delta) has float32
        # values only to about 1e-2 (the half vector's rounding against its width): its directions compared above
        same = same & ~((si.plastic[:, -1] > 0.5) & (si.roughness[:, 0] == 0))
    rel = ((weight.double() - ref64.weight).abs() / ref64.weight.abs().clamp_min(1e-6)).amax(-1)[same]
    assert float(rel.max()) < RAY_RTOL
    rel_pdf = ((pdf.double() - ref64.pdf[:, 0]).abs() / ref64.pdf[:, 0].abs().clamp_min(1e-6))[same]
    assert float(rel_pdf.max()) < RAY_RTOL


def _cornell_with(**model):
    """The Cornell box with Beckmann's microfacets (``microfacet="beckmann"``), Mitsuba's plastic (``plastic=True``)
    or its principled (``principled=True``) on its walls."""
    scene, cam = SCENES["cornell"]()
    for mesh in scene.meshes.values():
        for key, value in model.items():
            setattr(mesh.material, key, value)
    return scene, cam


VARIANTS = {"cornell_beckmann": dict(microfacet="beckmann"), "cornell_plastic": dict(plastic=True),
            "cornell_principled": dict(principled=True)}


@pytest.mark.parametrize("name, light_sampling", [("cornell", "solid_angle"), ("cornell", "auto"),
                                                  ("specular", "auto"), ("cornell_beckmann", "auto"),
                                                  ("cornell_plastic", "auto"), ("cornell_principled", "auto")])
def test_the_replay_gives_the_same_gradients_with_the_kernel(monkeypatch, name, light_sampling):
    """Reflectance and lamp-translation gradients with the kernels' values and samples and with the PyTorch
    references' (the same paths; float32 rounding apart)."""
    scene, cam = _cornell_with(**VARIANTS[name]) if name in VARIANTS else SCENES[name]()
    albedo = scene.meshes["back"].material.base_color_factor.requires_grad_(True)
    lamp = scene.lights["lamp"].verts.requires_grad_(True)
    integrator = lg.integrators.PathIntegrator(max_depth=5, light_sampling=light_sampling)
    calls = []
    reference = path_module.sample_paths

    def recorded(*args, **kwargs):
        calls.append(kwargs.get("kernels"))
        return reference(*args, **kwargs)

    def pytorch_term(*args, **kwargs):
        return reference(*args, **{**kwargs, "kernels": None})

    grads = []
    for replay in (recorded, pytorch_term):
        monkeypatch.setattr(path_module, "sample_paths", replay)
        img = lg.render(scene, cam, integrator=integrator, spp=2, seed=1).rgb
        grads.append(torch.autograd.grad(img.mean(), (albedo, lamp)))
    assert calls and calls[0] is not None  # the fused scene's replay used the kernel
    for with_kernel, with_torch in zip(*grads):
        assert float(with_torch.abs().max()) > 0
        assert torch.allclose(with_kernel, with_torch, rtol=1e-5, atol=1e-8)
