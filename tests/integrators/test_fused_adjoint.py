"""The path tracer's backward pass on the fused kernel (:mod:`lumigrad.integrators.fused_adjoint`): its replay
traces the primal's paths bit for bit; where the parameters do not change how paths are sampled its gradient is
exactly the derivative of the forward estimate (central differences of the same samples); where they do
(roughness, metallic, specular weight, index of refraction) it agrees with the PyTorch replay in the mean over
seeds; renders with other parameters requiring gradients go to the PyTorch replay."""

import dataclasses

import pytest
import torch

import lumigrad as lg
from lumigrad.integrators.fused_adjoint import fused_adjoint_unsupported, fused_value_gradients
from lumigrad.integrators.fused_paths import path_tables, sample_paths_fused
from lumigrad.integrators.path import _camera_rays, _trace_scene
from lumigrad.kernels.bvh import bvh_for
from lumigrad.kernels.path_trace import replay_paths_tables, trace_paths_tables
from lumigrad.shading import Material

from .test_fused_paths import F32, SCENES, _cornell, _punctual


@pytest.mark.parametrize("name", sorted(SCENES))  # (glass and thin sheets carried through)
@pytest.mark.parametrize("max_depth, rr_depth", [(6, 8), (-1, 2)])
def test_the_replay_traces_the_primal_paths_bit_for_bit(name, max_depth, rr_depth):
    """Both adjoint modes replay the primal's paths exactly and give the same sums (through glass and thin sheets
    too: their vertices only carry the paths)."""
    scene, cam = SCENES[name]()
    ts = _trace_scene(scene)
    tables = path_tables(ts)
    o, d = _camera_rays(cam, 4, 11, F32)
    settings = dict(max_depth=max_depth, rr_depth=rr_depth, seed=11, hide_emitters=False)
    L = sample_paths_fused(ts, o, d, tables=tables, **settings)
    verts = ts.verts.detach().contiguous()
    v = torch.randn(L.shape, generator=torch.Generator().manual_seed(0))
    bvh = bvh_for(verts, ts.faces)
    kw = dict(depth_limit=64 if max_depth < 0 else max_depth, rr_depth=rr_depth, seed=11, hide_emitters=False,
              texel_grad_rows=tables.tex_offset, want_env=True)  # every texture's texels wanted
    two_pass = replay_paths_tables(bvh, verts, tables, o, d, L, v, **kw)  # the primal's L given
    one_pass = replay_paths_tables(bvh, verts, tables, o, d, None, v, **kw)  # vertices held until L is known
    assert float(L.abs().sum()) > 0
    assert torch.equal(two_pass[5], L) and torch.equal(one_pass[5], L)
    for k in (0, 1, 2, 3, 4, 6):  # the same terms, summed in another order (float64)
        a, b = two_pass[k], one_pass[k]
        assert (a is None) == (b is None)
        assert a is None or torch.allclose(a, b, rtol=1e-9, atol=1e-12)
    if name in ("textured", "sky"):  # texels, the environment map
        assert two_pass[3 if name == "textured" else 4] is not None
    assert float(two_pass[0].abs().sum()) > 0


def test_a_plastic_parts_table_gets_its_entries_derivatives():
    """The replay differentiates a plastic part with its table held and returns the table entries' derivatives
    (two taps of ``t`` at each cosine and ``R_int``): nonzero on the plastic parts' rows only."""
    scene, cam = SCENES["plastic"]()
    ts = _trace_scene(scene)
    tables = path_tables(ts)
    o, d = _camera_rays(cam, 2, 11, F32)
    verts = ts.verts.detach().contiguous()
    out = replay_paths_tables(bvh_for(verts, ts.faces), verts, tables, o, d, None, torch.ones(o.shape[0], 3),
                              depth_limit=4, rr_depth=5, seed=0, hide_emitters=False)
    g_plastic = out[6]
    plastic = torch.tensor([getattr(m, "plastic", False) for m in ts.materials])
    assert g_plastic.shape == (len(ts.materials), 66)
    assert bool((g_plastic[~plastic] == 0).all())
    rough = torch.tensor([getattr(m, "plastic", False) and float(m.roughness_factor) > 0 for m in ts.materials])
    assert bool((g_plastic[rough, :64].abs().sum(-1) > 0).all())  # (the tables' t: rough parts only)
    assert bool((g_plastic[plastic, 64] != 0).all())  # R_int
    assert bool((g_plastic[:, 65] == 0).all())  # (the flag column)


def _lambert(rgb, emissive=None):
    kw = {} if emissive is None else {"emissive_factor": emissive}
    return Material(base_color_factor=torch.cat([torch.as_tensor(rgb, dtype=F32), torch.ones(1)]),
                    metallic_factor=0.0, roughness_factor=1.0, specular_factor=0.0, **kw)


def _lambert_box(leaves):
    """The Cornell box of test_fused_paths with Lambertian walls (sampling independent of the base colour): the
    back and left walls' colours, an emissive floor patch's emission and the lamp's radiance from ``leaves``."""
    scene, cam = _cornell()
    colours = {"back": leaves["back"], "left": leaves["left"], "floor": torch.tensor([0.7, 0.7, 0.7]),
               "ceiling": torch.tensor([0.7, 0.7, 0.7]), "right": torch.tensor([0.1, 0.6, 0.1])}
    for name, rgb in colours.items():
        scene.meshes[name].material = _lambert(rgb, leaves["glow"] if name == "floor" else None)
    scene.lights["lamp"].radiance = leaves["lamp"]
    return scene, cam


def _punctual_values(leaves):
    """test_fused_paths' point, spot and directional lights over glossy surfaces, their values from ``leaves``
    (next-event estimation of punctual lights samples nothing that depends on them)."""
    scene, cam = _punctual()
    scene.lights["point"].intensity = leaves["point_intensity"]
    scene.lights["point"].color = leaves["point_color"]
    scene.lights["spot"].intensity = leaves["spot_intensity"]
    scene.lights["sun"].irradiance = leaves["sun"]
    return scene, cam


CASES = {
    "lambert_box": (_lambert_box, {"back": [0.7, 0.6, 0.5], "left": [0.6, 0.1, 0.1], "glow": [0.2, 0.3, 0.1],
                                   "lamp": [15.0, 14.0, 12.0]}),
    "punctual": (_punctual_values, {"point_intensity": 3.0, "point_color": [1.0, 0.9, 0.8], "spot_intensity": 6.0,
                                    "sun": 0.8}),
}


def _textured_box(leaves):
    """The Lambertian box with a base colour texture (sRGB, scaled by its factor) on the back wall and an
    emissive texture on the floor, texels and factors from ``leaves``."""
    scene, cam = _lambert_box({"back": [0.7, 0.6, 0.5], "left": [0.6, 0.1, 0.1], "glow": [0.0, 0.0, 0.0],
                               "lamp": torch.tensor([15.0, 14.0, 12.0])})
    back, floor = scene.meshes["back"].material, scene.meshes["floor"].material
    back.base_color_factor = torch.cat([leaves["back_factor"], torch.ones(1)])
    back.base_color_texture = leaves["back_texels"]
    floor.emissive_factor = leaves["glow_factor"]
    floor.emissive_texture = leaves["glow_texels"]
    for name in ("back", "floor"):  # uv: the quad's corners
        scene.meshes[name].uv = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
        scene.meshes[name].uv_faces = scene.meshes[name].faces
    return scene, cam


_g = torch.Generator().manual_seed(4)
CASES["textured_box"] = (_textured_box, {"back_factor": [0.9, 0.8, 1.0],
                                         "back_texels": (0.2 + 0.7 * torch.rand(3, 4, 3, generator=_g)).tolist(),
                                         "glow_factor": [0.5, 0.4, 0.6],
                                         "glow_texels": (0.1 + 0.8 * torch.rand(2, 3, 3, generator=_g)).tolist()})

@pytest.mark.parametrize("case", sorted(CASES))
def test_value_gradients_are_the_derivative_of_the_forward_estimate(case):
    """With ``seed_grad = seed`` the backward pass replays the forward's own paths; for values that change no
    sampling decision the forward estimate is a smooth function of them with those paths fixed, so its central
    differences must equal the gradient (to float32 rounding)."""
    build, values = CASES[case]
    base = {k: torch.tensor(v, dtype=F32) for k, v in values.items()}
    settings = dict(integrator="path", spp=4, seed=3, seed_grad=3, max_depth=6, rr_depth=8)
    weights = torch.rand(16, 16, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def loss(leaves):
        scene, cam = build(leaves)
        return (lg.render(scene, cam, **settings).rgb.double() * weights).sum()

    leaves = {k: v.clone().requires_grad_(True) for k, v in base.items()}
    scene, cam = build(leaves)
    assert fused_adjoint_unsupported(_trace_scene(scene), cam) is None
    loss(leaves).backward()
    for name, value in base.items():
        grad = leaves[name].grad.double().reshape(-1)
        for c in range(0, grad.numel(), max(1, grad.numel() // 12)):  # (a texture: a dozen texels' channels)
            h = 1e-3 * max(float(value.reshape(-1)[c]), 1.0)
            step = torch.zeros(value.numel(), dtype=F32)
            step[c] = h
            with torch.no_grad():
                up = loss({**base, name: value + step.reshape(value.shape)})
                down = loss({**base, name: value - step.reshape(value.shape)})
            fd = float(up - down) / (2 * h)
            assert abs(fd) > 0, (name, c)
            assert abs(float(grad[c]) - fd) <= 2e-3 * abs(fd), (name, c, float(grad[c]), fd)


ZERO_CASES = {
    "lambert_box": (_lambert_box, {"back": [0.7, 0.6, 0.5], "left": [0.6, 0.1, 0.1], "glow": [0.0, 0.0, 0.0],
                                   "lamp": [15.0, 0.0, 12.0]}),
    "punctual": (_punctual_values, {"point_intensity": 0.0, "point_color": [1.0, 0.9, 0.8], "spot_intensity": 6.0,
                                    "sun": 0.0}),
}


@pytest.mark.parametrize("case", sorted(ZERO_CASES))
def test_values_at_zero_get_their_gradient(case):
    """A light or emission of value 0: the term is zero, its derivative is not (the replay traces the shadow rays
    a zero term skips in the primal). Forward differences from 0 (no step below: values are clamped or must be
    non-negative), exact for these linear values. (A base colour channel at exactly 0 loses the part of its
    derivative carried by the paths it would continue, ``L_rest / f`` being 0 / 0 there, as in the PyTorch
    replay and Mitsuba's ``prb``.)"""
    build, values = ZERO_CASES[case]
    base = {k: torch.tensor(v, dtype=F32) for k, v in values.items()}
    settings = dict(integrator="path", spp=4, seed=5, seed_grad=5, max_depth=6, rr_depth=8)

    def loss(leaves):
        scene, cam = build(leaves)
        return lg.render(scene, cam, **settings).rgb.double().sum()

    leaves = {k: v.clone().requires_grad_(True) for k, v in base.items()}
    loss(leaves).backward()
    h = 1e-3
    for name, value in base.items():
        flat = value.reshape(-1)
        for c in (c for c in range(flat.numel()) if float(flat[c]) == 0):
            step = torch.zeros(flat.numel(), dtype=F32)
            step[c] = h
            with torch.no_grad():
                fd = float(loss({**base, name: value + step.reshape(value.shape)}) - loss(base)) / h
            grad = float(leaves[name].grad.reshape(-1)[c])
            assert fd > 0, (name, c)
            assert abs(grad - fd) <= 2e-3 * fd, (name, c, grad, fd)


def _textured_no_lamp():
    """test_fused_paths' textured scene (base colour, metallic-roughness and emissive textures) lit by its
    directional light alone."""
    scene, cam = SCENES["textured"]()
    for name in [n for n, l in scene.lights.items() if isinstance(l, lg.AreaLight)]:
        del scene.lights[name]
    return scene, cam


def _normal_mapped_no_lamp():
    """test_fused_paths' normal-mapped scene (normal maps that require no gradient) lit by its point light alone."""
    scene, cam = SCENES["normal_mapped"]()
    for name in [n for n, l in scene.lights.items() if isinstance(l, lg.AreaLight)]:
        del scene.lights[name]
    return scene, cam


def _shadowed_normal_maps_no_lamp():
    """:func:`_normal_mapped_no_lamp` with Mitsuba's normal maps (shadowed, flipped)."""
    scene, cam = _normal_mapped_no_lamp()
    for name in ("floor", "card"):
        scene.meshes[name].material.mitsuba_normal_map = True
    return scene, cam


def _all_values_require_grad(scene):
    """Every material and light value of ``scene`` as a leaf that requires a gradient: ``{name: leaf}``."""
    leaves = {}
    for mesh_name, mesh in scene.meshes.items():
        m = mesh.material
        for field in ("base_color_factor", "metallic_factor", "roughness_factor", "ior", "specular_factor",
                      "emissive_factor", "base_color_texture", "metallic_roughness_texture", "emissive_texture"):
            value = getattr(m, field)
            if value is not None:
                leaf = torch.as_tensor(value, dtype=F32).clone().requires_grad_(True)
                setattr(m, field, leaf)
                leaves[f"{mesh_name}.{field}"] = leaf
    for light_name, light in scene.lights.items():
        for field in ("intensity", "color", "irradiance", "texels", "scale"):
            if hasattr(light, field):
                leaf = torch.as_tensor(getattr(light, field), dtype=F32).clone().requires_grad_(True)
                setattr(light, field, leaf)
                leaves[f"{light_name}.{field}"] = leaf
    return leaves


def _punctual_beckmann():
    """:func:`_punctual` with Beckmann's microfacets on every part (Mitsuba's default for its rough BSDFs)."""
    scene, cam = _punctual()
    for mesh in scene.meshes.values():
        mesh.material.microfacet = "beckmann"
    return scene, cam


def _punctual_plastic(beckmann=False):
    """:func:`_punctual` with Mitsuba's plastic on every part (rough, GGX or Beckmann; the first part smooth)."""
    scene, cam = _punctual()
    for k, mesh in enumerate(scene.meshes.values()):
        mesh.material.plastic = True
        mesh.material.microfacet = "beckmann" if beckmann else "ggx"
        if k == 0:
            mesh.material.roughness_factor = torch.tensor(0.0)
    return scene, cam


def _punctual_principled():
    """:func:`_punctual` with Mitsuba's principled BSDF on every part."""
    scene, cam = _punctual()
    for mesh in scene.meshes.values():
        mesh.material.principled = True
    return scene, cam


def _punctual_conductor(beckmann=False):
    """:func:`_punctual` with Mitsuba's conductor on every part (chromium, GGX or Beckmann)."""
    scene, cam = _punctual()
    for mesh in scene.meshes.values():
        mesh.material.conductor_eta = torch.tensor([4.36968, 2.9165, 1.6549])
        mesh.material.conductor_k = torch.tensor([5.20652, 4.23133, 3.7547])
        mesh.material.microfacet = "beckmann" if beckmann else "ggx"
    return scene, cam


def _punctual_delta_specular():
    """:func:`_punctual` with ``Material.delta_specular`` parts: the floor a smooth plastic (delta lights see its
    diffuse base alone), the card a smooth chromium mirror (they see nothing of it), under a sky too."""
    scene, cam = _punctual()
    floor, card = scene.meshes["floor"].material, scene.meshes["card"].material
    floor.plastic, floor.roughness_factor = True, torch.tensor(0.0)
    floor.delta_specular = True
    card.conductor_eta = torch.tensor([4.36968, 2.9165, 1.6549])
    card.conductor_k = torch.tensor([5.20652, 4.23133, 3.7547])
    card.roughness_factor = torch.tensor(0.0)
    card.delta_specular = True
    scene.add_light("sky", lg.EnvironmentLight(torch.rand(4, 8, 3, generator=torch.Generator().manual_seed(2))))
    return scene, cam


@pytest.mark.parametrize("build", [_punctual, SCENES["sky"], _textured_no_lamp, _normal_mapped_no_lamp,
                                   _punctual_beckmann, _punctual_principled, _punctual_plastic,
                                   lambda: _punctual_plastic(True), _shadowed_normal_maps_no_lamp,
                                   _punctual_conductor, lambda: _punctual_conductor(True), _punctual_delta_specular],
                         ids=["punctual", "sky", "textured", "normal_mapped", "beckmann", "principled", "plastic",
                              "plastic_beckmann", "shadowed_normal_maps", "conductor", "conductor_beckmann",
                              "delta_specular"])
def test_without_area_lights_the_fused_replay_equals_the_pytorch_replay(build):
    """Without area lights (which the PyTorch replay samples anew by area), both replays differentiate the same
    estimator along the same paths with sampling detached: every material and light value's gradient (factors,
    IOR, specular weight, textures' texels, light values, the environment map's texels and scale) must agree to
    float32 rounding."""
    grads = {}
    for fused in (True, False):
        scene, cam = build()
        leaves = _all_values_require_grad(scene)
        assert fused_adjoint_unsupported(_trace_scene(scene), cam) is None
        lg.render(scene, cam, integrator="path", spp=8, seed=1, max_depth=5, rr_depth=3,
                  fused_adjoint=fused).rgb.mean().backward()
        grads[fused] = {k: v.grad for k, v in leaves.items()}
    assert len(grads[True]) >= 8
    for name, ref in grads[False].items():
        got = grads[True][name]
        assert (got is None) == (ref is None), name
        if ref is None:
            continue
        scale = float(ref.abs().max())
        assert float((got - ref).abs().max()) <= 1e-4 * scale + 1e-9, (name, got, ref)
    assert sum(float(g.abs().max()) > 0 for g in grads[True].values() if g is not None) >= 6


def _transmits(m) -> bool:
    return (bool((m.transmission_factor.detach() != 0).any()) and not getattr(m, "plastic", False)
            and not getattr(m, "principled", False) and getattr(m, "conductor_eta", None) is None)


def _glass_under_a_sky(beckmann=False):
    """The rough glass ball (GGX or Beckmann) on its floor under the sun and a sky instead of the area lamp."""
    scene, cam = SCENES["beckmann_glass" if beckmann else "glass"]()
    del scene.lights["lamp"]
    scene.add_light("sky", lg.EnvironmentLight(torch.rand(8, 16, 3, generator=torch.Generator().manual_seed(4)) + 0.2))
    return scene, cam


@pytest.mark.parametrize("build", [_glass_under_a_sky, lambda: _glass_under_a_sky(True), SCENES["partial_glass"],
                                   SCENES["thin_sheets"]],
                         ids=["glass", "beckmann_glass", "partial_glass", "thin_sheets"])
def test_glass_is_carried_through_by_the_fused_replay(build):
    """Glass balls (rough, GGX and Beckmann; partly transmitting), index-matched panes and thin sheets are carried
    through by the fused replay: the opaque parts' and the lights' value gradients (the sky seen through the glass
    included) equal the PyTorch replay's to float32 rounding (scenes without area lights, which the PyTorch replay
    samples anew by area); the glass's own values take the PyTorch replay."""
    grads = {}
    for fused in (True, False):
        scene, cam = build()
        glass = {k for k, mesh in scene.meshes.items() if _transmits(mesh.material)}
        for k in glass:  # (their own values: the PyTorch replay's)
            scene.meshes[k].material = dataclasses.replace(scene.meshes[k].material)
        leaves = {k: v for k, v in _all_values_require_grad(scene).items() if k.split(".")[0] not in glass}
        for k in glass:
            for field, value in vars(scene.meshes[k].material).items():
                if isinstance(value, torch.Tensor):
                    value.requires_grad_(False)
        assert glass and fused_adjoint_unsupported(_trace_scene(scene), cam) is None
        lg.render(scene, cam, integrator="path", spp=8, seed=1, max_depth=6, rr_depth=3,
                  fused_adjoint=fused).rgb.mean().backward()
        grads[fused] = {k: v.grad for k, v in leaves.items()}
    nonzero = 0
    for key, ref in grads[False].items():
        got = grads[True][key]
        assert (got is None) == (ref is None), key
        if ref is None:
            continue
        nonzero += float(ref.abs().max()) > 0
        assert float((got - ref).abs().max()) <= 1e-4 * float(ref.abs().max()) + 1e-9, (key, got, ref)
    assert nonzero >= 4


def _glossy(leaves):
    """test_fused_paths' metal scene (rough metal ball, coated floor, area and point lights) with its materials'
    metallic, roughness, specular weight and index of refraction from ``leaves``."""
    scene, cam = SCENES["metal"]()
    floor, ball = scene.meshes["floor"].material, scene.meshes["ball"].material
    floor.roughness_factor, floor.metallic_factor = leaves["floor_roughness"], leaves["floor_metallic"]
    floor.ior, floor.specular_factor = leaves["floor_ior"], leaves["floor_specular"]
    floor.metallic_roughness_texture = leaves["floor_mr_texels"]  # G roughness, B metallic: times the factors
    scene.meshes["floor"].uv = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    scene.meshes["floor"].uv_faces = scene.meshes["floor"].faces
    ball.roughness_factor = leaves["ball_roughness"]
    return scene, cam


def test_glossy_gradients_agree_with_the_pytorch_replay_over_seeds():
    """Roughness, metallic, specular weight and IOR change the lobes' sampling, so the fused replay (detached
    sampling) and the PyTorch replay (its own estimator) differ path by path: their means over seeds must
    agree within the seeds' standard error. The floor's metallic-roughness texture scales its factors: its
    texels' gradients (summed per channel, G and B) too."""
    mr = torch.rand(2, 3, 3, generator=torch.Generator().manual_seed(9)) * 0.5 + 0.5
    values = {"floor_roughness": 0.8, "floor_metallic": 0.5, "floor_ior": 1.5, "floor_specular": 0.8,
              "ball_roughness": 0.35, "floor_mr_texels": mr}
    runs = {True: [], False: []}
    seeds = 8
    for seed in range(seeds):
        for fused in (True, False):
            leaves = {k: torch.as_tensor(v).clone().requires_grad_(True) for k, v in values.items()}
            scene, cam = _glossy(leaves)
            lg.render(scene, cam, integrator="path", spp=16, seed=seed, max_depth=4,
                      fused_adjoint=fused).rgb.mean().backward()
            texels = leaves.pop("floor_mr_texels").grad
            assert float(texels[..., 0].abs().max()) == 0  # (R: unused)
            runs[fused].append(torch.cat([torch.stack([leaves[k].grad for k in leaves]),
                                          texels[..., 1:].sum((0, 1))]).double())
    fused, torch_replay = torch.stack(runs[True]), torch.stack(runs[False])
    # the floor's gradients stand clear of the noise (the ball's roughness is dominated by it at this size)
    floor = torch_replay[:, [0, 1, 2, 3, 5, 6]]
    assert bool((floor.mean(0).abs() > 2.5 * floor.std(0) / seeds ** 0.5).all()), floor.mean(0)
    diff = fused - torch_replay
    se = diff.std(0) / seeds ** 0.5
    assert bool((diff.mean(0).abs() < 4 * se).all()), (diff.mean(0), se)


def test_other_parameters_go_to_the_pytorch_replay():
    scene, cam = _punctual()
    ts = _trace_scene(scene)
    assert fused_adjoint_unsupported(ts, cam) is None
    glass, glass_cam = SCENES["glass"]()
    assert fused_adjoint_unsupported(_trace_scene(glass), glass_cam) is None  # (glass carried through)
    glass.meshes["ball"].material.ior = torch.tensor(1.5, requires_grad=True)
    assert "transmits and its ior requires" in fused_adjoint_unsupported(_trace_scene(glass), glass_cam)
    scene.lights["point"].position = torch.tensor([0.2, 1.2, 0.1], requires_grad=True)
    assert "position" in fused_adjoint_unsupported(_trace_scene(scene), cam)
    scene, cam = _punctual()
    cam.world_to_cam.requires_grad_(True)
    assert "world_to_cam" in fused_adjoint_unsupported(_trace_scene(scene), cam)
    scene, cam = _punctual()
    scene.meshes["floor"].verts.requires_grad_(True)
    assert "vertices" in fused_adjoint_unsupported(_trace_scene(scene), cam)
    scene, cam = SCENES["textured"]()
    part = next(m for m in scene.meshes.values() if m.material.base_color_texture is not None)
    part.material.base_color_factor = part.material.base_color_factor.clone().requires_grad_(True)
    part.material.base_color_texture.requires_grad_(True)
    assert fused_adjoint_unsupported(_trace_scene(scene), cam) is None  # textured factors and texels: values
    part.material.normal_texture = torch.full((2, 2, 3), 0.5, requires_grad=True)
    assert "normal_texture" in fused_adjoint_unsupported(_trace_scene(scene), cam)
    scene, cam = SCENES["normal_mapped"]()
    assert fused_adjoint_unsupported(_trace_scene(scene), cam) is None  # normal maps that require no gradient
    floor = scene.meshes["floor"]
    floor.tangents = torch.tensor([[1.0, 0.0, 0.0, 1.0]]).repeat(floor.verts.shape[0], 1).requires_grad_(True)
    assert "tangents" in fused_adjoint_unsupported(_trace_scene(scene), cam)
    scene, cam = SCENES["normal_mapped"]()
    scene.meshes["floor"].material.normal_scale = torch.tensor(0.7, requires_grad=True)
    assert "normal_scale" in fused_adjoint_unsupported(_trace_scene(scene), cam)
    with pytest.raises(TypeError, match="fused_adjoint"):
        lg.integrators.PathIntegrator(fused_adjoint=1)


def test_a_vertex_gradient_beside_a_value_gradient_takes_the_pytorch_replay():
    """Mixed parameters: the PyTorch replay (with the boundary terms) answers both; the value's gradient is the
    same estimate the fused replay gives for it alone, in the mean (one seed: close, not equal)."""
    scene, cam = _punctual()
    intensity = torch.tensor(3.0, requires_grad=True)
    scene.lights["point"].intensity = intensity
    lg.render(scene, cam, integrator="path", spp=16, seed=2, max_depth=3).rgb.mean().backward()
    alone = intensity.grad.clone()
    intensity.grad = None
    scene.meshes["card"].verts.requires_grad_(True)
    lg.render(scene, cam, integrator="path", spp=16, seed=2, max_depth=3).rgb.mean().backward()
    assert scene.meshes["card"].verts.grad is not None
    assert abs(float(intensity.grad) - float(alone)) < 0.05 * abs(float(alone))


def test_only_the_textures_that_require_gradients_get_rows():
    """One texture (the last in the table) requires a gradient: the kernel's compact rows land on its texels,
    equal to the PyTorch replay's (no area light: the same estimator)."""
    grads = {}
    for fused in (True, False):
        scene, cam = _textured_no_lamp()
        card = scene.meshes["card"].material
        card.emissive_texture = card.emissive_texture.clone().requires_grad_(True)
        lg.render(scene, cam, integrator="path", spp=8, seed=2, max_depth=4, fused_adjoint=fused).rgb.mean().backward()
        grads[fused] = card.emissive_texture.grad
    assert float(grads[False].abs().max()) > 0
    assert torch.allclose(grads[True], grads[False], rtol=0, atol=1e-4 * float(grads[False].abs().max()))


@pytest.mark.cuda
@pytest.mark.parametrize("build", [_punctual, SCENES["sky"], _textured_no_lamp], ids=["punctual", "sky", "textured"])
def test_the_fused_replay_runs_on_cuda_as_the_pytorch_replay(build):
    """On a CUDA device the fused replay takes two passes (the primal's radiance, then the replay, float64
    atomics into one table): without area lights it must still equal the PyTorch replay there (a path that
    branches otherwise between the two float32 implementations allows a little more than rounding)."""
    grads = {}
    with torch.device("cuda"):
        for fused in (True, False):
            scene, cam = build()
            leaves = _all_values_require_grad(scene)
            lg.render(scene, cam, integrator="path", spp=8, seed=1, max_depth=5, rr_depth=3,
                      fused_adjoint=fused).rgb.mean().backward()
            grads[fused] = {k: v.grad for k, v in leaves.items()}
    for name, ref in grads[False].items():
        got = grads[True][name]
        assert (got is None) == (ref is None), name
        if ref is not None:
            assert got.device.type == "cuda"
            assert float((got - ref).abs().max()) <= 1e-2 * float(ref.abs().max()) + 1e-9, name


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
@pytest.mark.parametrize("name", ["cornell", "principled", "plastic", "conductor"])
def test_the_two_pass_replay_retraces_its_primal_bit_for_bit(name, device):
    """The replay's primal pass (``for_replay``) and the replay are the same compiled variant, so the replay
    gathers exactly the radiance it was given (the remainder ``L - gathered`` of every continuing vertex needs it),
    also on CUDA, whose compiler contracts across statements."""
    with torch.device(device):
        scene, cam = SCENES[name]()
        ts = _trace_scene(scene)
        tables = path_tables(ts)
        o, d = _camera_rays(cam, 4, 11, F32)
        verts = ts.verts.detach().contiguous()
        bvh = bvh_for(verts, ts.faces)
        kw = dict(depth_limit=6, rr_depth=3, seed=11, hide_emitters=False)
        L = trace_paths_tables(bvh, verts, tables, o, d, for_replay=True, **kw)[0]
        replayed = replay_paths_tables(bvh, verts, tables, o, d, L, torch.ones_like(L), **kw)[5]
    assert L.device.type == device
    assert float(L.abs().sum()) > 0 and torch.equal(replayed, L)
