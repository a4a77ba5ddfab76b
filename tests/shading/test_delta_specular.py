"""Dirac specular lobes towards delta lights (``Material.delta_specular``, :mod:`lumigrad.shading.delta_specular`):
what a point, spot or directional light sees of a smooth conductor, glass or plastic (nothing, nothing, the
diffuse base) in the shading, the path tracer (both transports, the shadow-edge terms) and the raster, and the
material's checks."""


import pytest
import torch

import lumigrad as lg
from lumigrad.shading import Material, SurfaceSample
from lumigrad.shading.delta_specular import dirac_points, eval_toward_delta_light
from lumigrad.shading.plastic import PlasticBSDF, plastic_table
from lumigrad.shading.transmission import bsdf_for

from ..conftest import mitsuba_scalar
from .chi2 import upper_directions as _directions

DT = torch.float64
QUAD = torch.tensor([[0, 1, 2], [0, 2, 3]])
CHROMIUM = ([4.36968, 2.9165, 1.6549], [5.20652, 4.23133, 3.7547])



def _plastic_si(wo, base=(0.6, 0.3, 0.2), ior=1.49, **kw):
    n = wo.shape[0]
    table = plastic_table(torch.tensor(0.0, dtype=DT), torch.tensor(ior, dtype=DT), False)
    return SurfaceSample(position=torch.zeros(n, 3, dtype=DT), normal=torch.tensor([0.0, 0.0, 1.0], dtype=DT).expand(n, 3),
                         wo=wo, base_color=torch.as_tensor(base, dtype=DT).expand(n, 3),
                         roughness=torch.zeros(n, 1, dtype=DT), metallic=torch.zeros(n, 1, dtype=DT),
                         ior=torch.full((n, 1), ior, dtype=DT), plastic=table.expand(n, -1), **kw)


def test_a_smooth_plastics_diffuse_base_is_mitsubas_smooth_plastic_in_every_direction():
    """``PlasticBSDF.eval_diffuse`` (what a delta light sees of a smooth plastic) is Mitsuba's ``plastic.eval``
    at random directions and at the mirror direction, where the whole value holds the coat's sharp lobe."""
    mi = mitsuba_scalar()
    bsdf = mi.load_dict({"type": "plastic", "int_ior": 1.49, "ext_ior": 1.0,
                         "diffuse_reflectance": {"type": "rgb", "value": [0.6, 0.3, 0.2]}})
    wo, wi = _directions(40, 3)
    mirror = wo * torch.tensor([-1.0, -1.0, 1.0], dtype=DT)
    si = _plastic_si(wo)
    for directions in (wi, mirror):
        ours = PlasticBSDF().eval_diffuse(si, directions)
        for k in range(40):
            s = mi.SurfaceInteraction3f()
            s.wi = mi.Vector3f(wo[k].tolist())
            s.sh_frame = mi.Frame3f(mi.Vector3f(0, 0, 1))
            ref = [float(c) / float(directions[k, 2]) for c in
                   bsdf.eval(mi.BSDFContext(), s, mi.Vector3f(directions[k].tolist()))]
            assert ours[k].tolist() == pytest.approx(ref, rel=1e-4), k
    assert bool((PlasticBSDF().eval(si, mirror) > 100 * PlasticBSDF().eval_diffuse(si, mirror)).all())


def _mixed_points():
    """Five points of one batch: glTF, a smooth conductor, smooth glass and a smooth plastic marked
    ``delta_specular``, and a smooth plastic not marked; through ``lumigrad.shading.sample_material`` as renderers
    build them."""
    glass = Material(base_color_factor=[1.0, 1.0, 1.0, 1.0], metallic_factor=0.0, roughness_factor=0.0,
                     transmission_factor=1.0, delta_specular=True)
    conductor = Material(base_color_factor=[0.6, 0.6, 0.6, 1.0], roughness_factor=0.0, conductor_eta=CHROMIUM[0],
                         conductor_k=CHROMIUM[1], delta_specular=True)
    plastic = Material(base_color_factor=[0.2, 0.5, 0.7, 1.0], metallic_factor=0.0, roughness_factor=0.0,
                       plastic=True, delta_specular=True)
    lobes = Material(base_color_factor=[0.2, 0.5, 0.7, 1.0], metallic_factor=0.0, roughness_factor=0.0, plastic=True)
    gltf = Material(base_color_factor=[0.8, 0.3, 0.2, 1.0], metallic_factor=0.5, roughness_factor=0.0)
    from lumigrad.shading.material import align_model_values, model_values_of, sample_material
    mats = [gltf, conductor, glass, plastic, lobes]
    wanted = model_values_of(mats)
    rows = []
    for m in mats:
        values = {k: v.to(DT) for k, v in sample_material(m, shape=(1,)).items()}
        values["ior"] = m.ior.to(DT).reshape(1, 1)
        rows.append(align_model_values(values, wanted, 1, values["base_color"]))
    values = {k: torch.cat([r[k] for r in rows]) for k in rows[0] if k != "normal_tangent"}
    wo = torch.tensor([0.3, -0.2, 0.9], dtype=DT)
    wo = (wo / wo.norm()).expand(5, 3)
    return SurfaceSample.from_material(torch.zeros(5, 3, dtype=DT),
                                       torch.tensor([0.0, 0.0, 1.0], dtype=DT).expand(5, 3), wo, values)


def test_a_delta_light_sees_nothing_of_dirac_lobes_but_a_plastics_base():
    si = _mixed_points()
    assert si.delta_specular[:, 0].tolist() == [0, 1, 1, 1, 0]
    bsdf = bsdf_for(si)
    mirror = si.wo * torch.tensor([-1.0, -1.0, 1.0], dtype=DT)
    elsewhere = torch.tensor([[-0.5, 0.4, 0.7]], dtype=DT).expand(5, 3)
    elsewhere = elsewhere / elsewhere.norm(dim=-1, keepdim=True)
    for wi in (mirror, elsewhere):
        whole, seen = bsdf.eval(si, wi), eval_toward_delta_light(bsdf, si, wi)
        assert torch.equal(seen[0], whole[0]) and torch.equal(seen[4], whole[4])  # unmarked: unchanged
        assert torch.equal(seen[1:3], torch.zeros_like(seen[1:3]))  # conductor and glass: nothing
        assert torch.allclose(seen[3], PlasticBSDF().eval_diffuse(si, wi)[3], rtol=0, atol=0)
        assert float(seen[3].min()) > 0
    assert float(bsdf.eval(si, mirror)[1:4].min()) > 1e3  # (the lobes a delta light no longer sees)


def test_a_mitsuba_normal_map_still_shadows_a_smooth_plastics_base():
    """A smooth plastic under Mitsuba's ``normalmap`` (``si.shadowing``): a delta light sees its diffuse base times
    the map's shadowing of grazing light, as ``bsdf_for``'s value carries it (and the fused kernel)."""
    from lumigrad.shading.normal_shadowing import shadowing_factor
    wo, wi = _directions(30, 7)
    unmapped = torch.tensor([0.0, 0.0, 1.0], dtype=DT).expand(30, 3)
    bent = torch.tensor([0.35, -0.2, 0.9], dtype=DT)
    si = _plastic_si(wo, shadowing=torch.ones(30, 1, dtype=DT), unmapped_normal=unmapped,
                     delta_specular=torch.ones(30, 1, dtype=DT)).replace(normal=(bent / bent.norm()).expand(30, 3))
    factor = shadowing_factor(si, wi)
    assert float(factor.min()) < 0.9  # (some directions graze the unmapped surface)
    seen = eval_toward_delta_light(bsdf_for(si), si, wi)
    assert torch.allclose(seen, PlasticBSDF().eval_diffuse(si, wi) * factor, rtol=1e-12, atol=0)


def test_the_value_toward_a_delta_light_is_differentiable():
    wo, wi = _directions(3, 5)
    base = torch.tensor([0.6, 0.3, 0.2], dtype=DT, requires_grad=True)
    ior = torch.tensor(1.49, dtype=DT, requires_grad=True)

    def value(base, ior, wi):
        table = plastic_table(torch.zeros((), dtype=DT), ior, False)
        si = SurfaceSample(position=torch.zeros(3, 3, dtype=DT), normal=torch.tensor([0.0, 0.0, 1.0], dtype=DT).expand(3, 3),
                           wo=wo, base_color=base.expand(3, 3), roughness=torch.zeros(3, 1, dtype=DT),
                           metallic=torch.zeros(3, 1, dtype=DT), ior=ior.expand(3, 1), plastic=table.expand(3, -1),
                           delta_specular=torch.ones(3, 1, dtype=DT))
        return eval_toward_delta_light(bsdf_for(si), si, wi)

    assert torch.autograd.gradcheck(value, (base, ior, wi.clone().requires_grad_(True)))


def test_the_flag_is_for_conductors_plastics_and_glass_and_acts_where_they_are_smooth():
    Material(roughness_factor=0.0, plastic=True, metallic_factor=0.0, delta_specular=True)
    with pytest.raises(ValueError, match="smooth models"):
        Material(roughness_factor=0.0, metallic_factor=1.0, delta_specular=True)  # the glTF metal
    with pytest.raises(ValueError, match="smooth models"):
        Material(roughness_factor=0.0, principled=True, delta_specular=True)
    with pytest.raises(ValueError, match="smooth models"):
        Material(roughness_factor=0.0, metallic_factor=0.0, transmission_factor=0.5, delta_specular=True)
    m = Material(roughness_factor=0.3)
    with pytest.raises(ValueError, match="smooth models"):
        m.delta_specular = True  # (checked when set, too, and not kept)
    assert m.delta_specular is False
    m = Material(roughness_factor=0.0, plastic=True, metallic_factor=0.0, delta_specular=True)
    with pytest.raises(ValueError, match="smooth models"):
        m.plastic = False  # (what it depends on is rechecked when set, and not kept)
    assert m.plastic and m.delta_specular
    m.delta_specular = False
    m.plastic = False  # (unflagged: free again)
    with pytest.raises(TypeError, match="delta_specular must be a bool"):
        Material(delta_specular=1)
    # a roughness above 0 (a fit moving it, a texture) makes the lobes ordinary ones again, point by point
    si = _mixed_points()
    assert dirac_points(si)[:, 0].tolist() == [False, True, True, True, False]
    rough = si.replace(roughness=torch.tensor([[0.0], [0.2], [0.0], [1e-4], [0.0]], dtype=DT))
    assert dirac_points(rough)[:, 0].tolist() == [False, False, True, False, False]
    wi = si.wo * torch.tensor([-1.0, -1.0, 1.0], dtype=DT)
    bsdf = bsdf_for(rough)
    assert torch.equal(eval_toward_delta_light(bsdf, rough, wi)[[1, 3]], bsdf.eval(rough, wi)[[1, 3]])


def _mirror_under_a_point_light(flag: bool, light_y=None):
    """A smooth chromium floor and a smooth chromium card above it (an occluder whose shadow edge crosses the
    floor), a point light and nothing else: with the flag, nothing in the image is lit."""
    scene = lg.Scene()
    for name, size, y in (("floor", 2.0, 0.0), ("card", 0.3, 0.5)):
        v = torch.tensor([[-size, y, -size], [size, y, -size], [size, y, size], [-size, y, size]])
        m = Material(base_color_factor=[0.9, 0.9, 0.9, 1.0], roughness_factor=0.0, conductor_eta=CHROMIUM[0],
                     conductor_k=CHROMIUM[1], delta_specular=flag)
        scene.add_mesh(name, lg.SceneMesh(v, QUAD, m, double_sided=True))
    y = torch.tensor(1.2) if light_y is None else light_y
    scene.add_light("point", lg.PointLight(torch.stack([torch.tensor(0.1), y, torch.tensor(0.1)]), torch.tensor(4.0)))
    cam = lg.Camera.look_at([0.0, 1.0, 2.5], [0.0, 0.0, 0.5], fov_y=0.9, width=24, height=24)  # (the glint in view)
    return scene, cam


@pytest.mark.parametrize("use_fused_kernel", [True, False])
def test_a_mirror_under_a_point_light_is_black_and_its_gradients_zero(use_fused_kernel):
    """The point light's glint in a smooth mirror (GGX of alpha 1e-3 without the flag) and the mirror's shadow
    edges: with ``delta_specular`` the image is black and the light's position gets no gradient (next-event
    estimation and the shadow-edge terms both see nothing); without, neither is zero."""
    for flag in (False, True):
        light_y = torch.tensor(1.2, requires_grad=True)
        scene, cam = _mirror_under_a_point_light(flag, light_y)
        img = lg.render(scene, cam, integrator="path", spp=64, max_depth=3, seed=1,
                        use_fused_kernel=use_fused_kernel).rgb
        img.sum().backward()
        if flag:
            assert float(img.detach().abs().max()) == 0.0 and float(light_y.grad.abs()) == 0.0
        else:
            assert float(img.detach().max()) > 1.0 and float(light_y.grad.abs()) > 0.0  # (the glint)


def test_the_raster_shades_a_smooth_plastic_by_its_base_and_a_mirror_black():
    """The raster's per-light shading takes its lights as deltas: a ``delta_specular`` mirror under a point light
    is black (no glint), a smooth plastic shows its diffuse base alone."""
    scene, cam = _mirror_under_a_point_light(True)
    img = lg.render(scene, cam, integrator="raster").rgb
    assert float(img.abs().max()) == 0.0
    scene, cam = _mirror_under_a_point_light(False)
    assert float(lg.render(scene, cam, integrator="raster").rgb.max()) > 0.1
    img = {}
    for flag in (False, True):
        scene, cam = _mirror_under_a_point_light(False)
        for mesh in scene.meshes.values():
            mesh.material = Material(base_color_factor=[0.2, 0.5, 0.7, 1.0], metallic_factor=0.0,
                                     roughness_factor=0.0, plastic=True, delta_specular=flag)
        img[flag] = lg.render(scene, cam, integrator="raster").rgb
    glint = img[False] - img[True]  # the coat's
    assert float(img[True].max()) > 0.5 and float(glint.min()) >= 0.0 and float(glint.max()) > 0.02
    img = {}  # glass: the raster shades it as an opaque surface (diffuse under the environment too): kept as is
    for flag in (False, True):
        scene, cam = _mirror_under_a_point_light(False)
        for mesh in scene.meshes.values():
            mesh.material = Material(base_color_factor=[0.9, 0.9, 0.9, 1.0], metallic_factor=0.0,
                                     roughness_factor=0.0, transmission_factor=1.0, delta_specular=flag)
        img[flag] = lg.render(scene, cam, integrator="raster").rgb
    assert float(img[True].max()) > 0.1 and torch.allclose(img[True], img[False], rtol=1e-5, atol=1e-6)
