"""The fused path kernel against its PyTorch twin (``sample_paths``): the same rays and seed give the same
per-ray radiance (float32), on scenes that exercise every light type, rough metal, smooth normals, base colour
textures, roulette;
scenes it does not support fall back to PyTorch; the integrator uses it by default and on request does not."""

import dataclasses
import math

import pytest
import torch

import lumigrad as lg
from lumigrad.integrators.fused_adjoint import fused_adjoint_unsupported
from lumigrad.integrators.fused_paths import (TRANSPORT_ENV, fused_unsupported, path_tables, sample_paths_fused,
                                            use_fused)
from lumigrad.integrators.path import _camera_rays, _trace_scene
from lumigrad.kernels.bvh import bvh_for
from lumigrad.raytrace.transport import TraceScene, sample_paths
from lumigrad.shading import HomogeneousMedium, Material

F32 = torch.float32
QUAD = torch.tensor([[0, 2, 1], [0, 3, 2]])
#: Per-ray relative error (``|L_fused - L_torch| / max(|L_torch|, 1e-2 mean)``, max over channels) of a path
#: both implementations trace alike: float32 rounding, accumulated over the bounces.
RAY_RTOL = 1e-4
#: The fraction of rays allowed to exceed it: paths where a float32 tie (a lobe choice at u ~ p_spec, a shadow
#: ray grazing an edge, roulette at u ~ q, an area light's triangle pick) falls the other way.
BRANCH_FRACTION = 0.01


def _material(rgb, metallic=0.0, roughness=1.0, ior=1.0, emissive=None):
    rgb = torch.as_tensor(rgb, dtype=F32)
    kw = {} if emissive is None else {"emissive_factor": torch.as_tensor(emissive, dtype=F32)}
    return Material(base_color_factor=torch.cat([rgb, torch.ones(1)]), metallic_factor=metallic,
                    roughness_factor=roughness, ior=ior, **kw)


def _quad(size, y, flip=False):
    s = size
    v = torch.tensor([[-s, y, -s], [s, y, -s], [s, y, s], [-s, y, s]], dtype=F32)
    quad = QUAD.to(v.device)  # (the default device: CUDA in the CUDA test)
    return v, (quad[:, [0, 2, 1]] if flip else quad)


def _cornell():
    walls = {
        "floor": ([[-1, -1, -1], [-1, -1, 1], [1, -1, 1], [1, -1, -1]], (0.7, 0.7, 0.7)),
        "ceiling": ([[-1, 1, -1], [1, 1, -1], [1, 1, 1], [-1, 1, 1]], (0.7, 0.7, 0.7)),
        "back": ([[-1, -1, 1], [-1, 1, 1], [1, 1, 1], [1, -1, 1]], (0.7, 0.7, 0.7)),
        "left": ([[-1, -1, -1], [-1, 1, -1], [-1, 1, 1], [-1, -1, 1]], (0.6, 0.1, 0.1)),
        "right": ([[1, -1, -1], [1, -1, 1], [1, 1, 1], [1, 1, -1]], (0.1, 0.6, 0.1)),
    }
    quad = torch.tensor([[0, 1, 2], [0, 2, 3]])
    scene = lg.Scene()
    for name, (verts, rgb) in walls.items():
        scene.add_mesh(name, lg.SceneMesh(torch.tensor(verts, dtype=F32), quad, _material(rgb, ior=1.5,
                                                                                         roughness=0.8),
                                          double_sided=True))
    lamp = torch.tensor([[-0.25, 0.99, -0.25], [0.25, 0.99, -0.25], [0.25, 0.99, 0.25], [-0.25, 0.99, 0.25]])
    scene.add_light("lamp", lg.AreaLight(lamp, quad, torch.tensor([15.0, 15.0, 15.0])))
    cam = lg.Camera.look_at([0.0, 0.0, -3.4], [0.0, 0.0, 0.0], fov_y=0.7, width=16, height=16)
    return scene, cam


def _punctual():
    """A floor with a double-sided occluder card (light bounces between them), lit by a point, a spot and a
    directional light."""
    scene = lg.Scene()
    v, f = _quad(2.0, 0.0)
    scene.add_mesh("floor", lg.SceneMesh(v, f, _material((0.6, 0.5, 0.4), ior=1.5, roughness=0.6)))
    v, f = _quad(0.3, 0.5)
    scene.add_mesh("card", lg.SceneMesh(v, f, _material((0.2, 0.3, 0.8), ior=1.5, roughness=0.4), double_sided=True))
    scene.add_light("point", lg.PointLight(torch.tensor([0.2, 1.2, 0.1]), torch.tensor(3.0),
                                           torch.tensor([1.0, 0.9, 0.8])))
    scene.add_light("spot", lg.SpotLight(torch.tensor([-0.8, 1.5, 0.3]), torch.tensor([0.4, -1.0, -0.1]),
                                         torch.tensor(6.0), inner_angle=0.2, outer_angle=0.6, range=5.0))
    scene.add_light("sun", lg.DirectionalLight(torch.tensor([0.3, -1.0, 0.2]), torch.tensor(0.8)))
    cam = lg.Camera.look_at([0.0, 2.0, 2.0], [0.0, 0.0, 0.0], fov_y=0.9, width=16, height=16)
    return scene, cam


def _sphere(n_theta=8, n_phi=12, radius=0.5, centre=(0.0, 0.5, 0.0)):
    rows = []
    for i in range(1, n_theta):
        th = math.pi * i / n_theta
        rows += [[radius * math.sin(th) * math.cos(2 * math.pi * j / n_phi), radius * math.cos(th),
                  radius * math.sin(th) * math.sin(2 * math.pi * j / n_phi)] for j in range(n_phi)]
    verts = torch.tensor(rows + [[0, radius, 0], [0, -radius, 0]], dtype=F32) + torch.tensor(centre)
    top, bottom = len(rows), len(rows) + 1
    faces = []
    for j in range(n_phi):
        faces.append([top, (j + 1) % n_phi, j])
        faces.append([bottom, (n_theta - 2) * n_phi + j, (n_theta - 2) * n_phi + (j + 1) % n_phi])
    for i in range(n_theta - 2):
        for j in range(n_phi):
            a, b = i * n_phi + j, i * n_phi + (j + 1) % n_phi
            faces += [[a, b, a + n_phi], [b, b + n_phi, a + n_phi]]
    return verts, torch.tensor(faces)


def _metal():
    """A rough metal sphere (smooth normals) on a glossy floor, an area light and a point light."""
    scene = lg.Scene()
    v, f = _quad(2.0, 0.0)
    scene.add_mesh("floor", lg.SceneMesh(v, f, _material((0.5, 0.5, 0.5), metallic=0.3, roughness=0.5, ior=1.5)))
    v, f = _sphere()
    scene.add_mesh("ball", lg.SceneMesh(v, f, _material((0.95, 0.7, 0.4), metallic=1.0, roughness=0.35)))
    lamp, lf = _quad(0.4, 1.8, flip=True)  # facing down
    scene.add_light("lamp", lg.AreaLight(lamp + torch.tensor([0.5, 0.0, 0.0]), lf, torch.tensor([6.0, 6.0, 5.0])))
    scene.add_light("point", lg.PointLight(torch.tensor([-1.0, 1.0, 0.8]), torch.tensor(2.0)))
    cam = lg.Camera.look_at([0.0, 1.2, 2.2], [0.0, 0.4, 0.0], fov_y=0.8, width=16, height=16)
    return scene, cam


def _mixed():
    """A two-sided area light with per-face radiance, an emissive card (an ordinary emissive surface), a point
    light with a range and a single-sided floor (black from below)."""
    scene = lg.Scene()
    v, f = _quad(2.0, 0.0)
    scene.add_mesh("floor", lg.SceneMesh(v, f, _material((0.5, 0.6, 0.7), metallic=0.5, roughness=0.2, ior=1.5)))
    v, f = _quad(0.3, 0.0)
    card = v[:, [1, 0, 2]] + torch.tensor([0.8, 0.3, 0.0])  # upright, facing +z
    scene.add_mesh("card", lg.SceneMesh(card, f, _material((0.1, 0.1, 0.1), emissive=(2.0, 1.0, 0.5))))
    lamp, lf = _quad(0.3, 1.0)
    scene.add_light("lamp", lg.AreaLight(lamp + torch.tensor([-0.5, 0.0, 0.0]), lf,
                                         torch.tensor([[4.0, 4.0, 4.0], [1.0, 3.0, 6.0]]), two_sided=True))
    scene.add_light("bulb", lg.PointLight(torch.tensor([0.5, 0.6, 0.5]), torch.tensor(1.5), range=1.5))
    cam = lg.Camera.look_at([0.3, 1.5, 2.0], [0.0, 0.3, 0.0], fov_y=1.0, width=16, height=16)
    return scene, cam


def _textured():
    """Base colour (3 and 4 channels), metallic-roughness and emissive textures, repeat and mirror wrap, uv
    beyond [0, 1], under an area light."""
    scene = lg.Scene()
    g = torch.Generator().manual_seed(5)
    v, f = _quad(2.0, 0.0)
    uv = torch.tensor([[-0.5, -0.5], [2.5, -0.5], [2.5, 2.5], [-0.5, 2.5]])
    floor = Material(base_color_factor=torch.tensor([1.0, 0.9, 0.8, 1.0]), metallic_factor=0.8,
                     roughness_factor=0.9, ior=1.5, base_color_texture=torch.rand(6, 5, 3, generator=g),
                     metallic_roughness_texture=torch.rand(3, 4, 3, generator=g))
    scene.add_mesh("floor", lg.SceneMesh(v, f, floor, uv=uv))
    v, f = _quad(0.4, 0.6)
    card = Material(base_color_factor=torch.tensor([1.0, 0.95, 0.9, 1.0]), metallic_factor=0.2,
                    roughness_factor=0.5, ior=1.5, base_color_texture=torch.rand(4, 7, 4, generator=g), wrap="mirror",
                    emissive_factor=torch.tensor([0.5, 0.4, 0.3]), emissive_texture=torch.rand(5, 3, 3, generator=g))
    scene.add_mesh("card", lg.SceneMesh(v, f, card, uv=uv * 0.7, double_sided=True))
    lamp, lf = _quad(0.3, 1.6, flip=True)
    scene.add_light("lamp", lg.AreaLight(lamp + torch.tensor([0.6, 0.0, 0.3]), lf, torch.tensor([8.0, 8.0, 8.0])))
    scene.add_light("sun", lg.DirectionalLight(torch.tensor([0.2, -1.0, 0.3]), torch.tensor(0.5)))
    cam = lg.Camera.look_at([0.0, 2.0, 2.0], [0.0, 0.0, 0.0], fov_y=0.9, width=16, height=16)
    return scene, cam


def _normal_map(g, h, w, tilt):
    """A tangent-space normal map ``[h, w, 3]`` encoded as ``(n + 1) / 2``: unit normals tilted up to ``tilt``."""
    xy = (torch.rand(h, w, 2, generator=g) - 0.5) * (2 * tilt)
    n = torch.cat([xy, torch.ones(h, w, 1)], -1)
    return (n / n.norm(dim=-1, keepdim=True) + 1) / 2


def _normal_mapped():
    """Normal maps (a scale, repeat and mirror wrap, mirrored uv on the card: the tangents' handedness) on a glossy
    floor and a double-sided card, beside a smooth ball without one, under a point and an area light."""
    scene = lg.Scene()
    g = torch.Generator().manual_seed(11)
    v, f = _quad(2.0, 0.0)
    uv = torch.tensor([[-0.5, -0.5], [2.5, -0.5], [2.5, 2.5], [-0.5, 2.5]])
    floor = Material(base_color_factor=torch.tensor([0.8, 0.7, 0.6, 1.0]), metallic_factor=0.6,
                     roughness_factor=0.35, ior=1.5, normal_texture=_normal_map(g, 7, 6, 0.8), normal_scale=0.7)
    scene.add_mesh("floor", lg.SceneMesh(v, f, floor, uv=uv))
    v, f = _quad(0.4, 0.6)
    card = Material(base_color_factor=torch.tensor([0.3, 0.6, 0.9, 1.0]), metallic_factor=0.0,
                    roughness_factor=0.5, ior=1.5, normal_texture=_normal_map(g, 5, 4, 1.2), wrap="mirror")
    scene.add_mesh("card", lg.SceneMesh(v, f, card, uv=uv.flip(-1) * 0.8, double_sided=True))
    v, f = _sphere(centre=(0.8, 0.5, -0.4), radius=0.3)
    scene.add_mesh("ball", lg.SceneMesh(v, f, _material((0.9, 0.8, 0.6), metallic=1.0, roughness=0.3)))
    lamp, lf = _quad(0.3, 1.6, flip=True)
    scene.add_light("lamp", lg.AreaLight(lamp + torch.tensor([-0.5, 0.0, 0.3]), lf, torch.tensor([8.0, 8.0, 8.0])))
    scene.add_light("point", lg.PointLight(torch.tensor([0.4, 1.3, 0.6]), torch.tensor(3.0),
                                           torch.tensor([1.0, 0.9, 0.8])))
    cam = lg.Camera.look_at([0.0, 2.0, 2.0], [0.0, 0.0, 0.0], fov_y=0.9, width=16, height=16)
    return scene, cam


def _shadowed_normal_maps():
    """:func:`_normal_mapped` with Mitsuba's normal maps (``Material.mitsuba_normal_map``: grazing light shadowed,
    normals facing away from the viewer mirrored) on the floor and the card; the tilted card's strong map (scale 1.2)
    turns some normals from the viewer."""
    scene, cam = _normal_mapped()
    for name in ("floor", "card"):
        scene.meshes[name].material.mitsuba_normal_map = True
    return scene, cam


def _glass():
    """A rough glass ball (KHR_materials_transmission 1, ior 1.5, roughness 0.3) on a floor under an area lamp and
    a sun: refraction in and out, total internal reflection, next-event estimation through the surface."""
    scene = lg.Scene()
    v, f = _quad(2.0, 0.0)
    scene.add_mesh("floor", lg.SceneMesh(v, f, _material((0.6, 0.55, 0.5), ior=1.5, roughness=0.7)))
    v, f = _sphere(n_theta=10, n_phi=16, radius=0.45, centre=(0.0, 0.5, 0.0))
    glass = Material(base_color_factor=torch.tensor([0.95, 0.9, 1.0, 1.0]), metallic_factor=0.0,
                     roughness_factor=0.3, ior=1.5, transmission_factor=1.0)
    scene.add_mesh("ball", lg.SceneMesh(v, f, glass))
    lamp, lf = _quad(0.3, 1.6, flip=True)
    scene.add_light("lamp", lg.AreaLight(lamp + torch.tensor([0.4, 0.0, 0.2]), lf, torch.tensor([8.0, 8.0, 8.0])))
    scene.add_light("sun", lg.DirectionalLight(torch.tensor([0.3, -1.0, 0.2]), torch.tensor(0.8)))
    cam = lg.Camera.look_at([0.0, 1.5, 2.0], [0.0, 0.4, 0.0], fov_y=0.8, width=16, height=16)
    return scene, cam


def _partial_glass():
    """Partly transmitting, partly metallic smooth-ish material (transmission 0.5, metallic 0.3, roughness 0.15,
    ior 1.33) on a ball, an index-matched pane (ior 1: a straight pass-through, a delta lobe) in front of it, a
    point light and an environment map."""
    scene = lg.Scene()
    g = torch.Generator().manual_seed(13)
    v, f = _quad(2.0, 0.0)
    scene.add_mesh("floor", lg.SceneMesh(v, f, _material((0.5, 0.6, 0.5), ior=1.5, roughness=0.5)))
    v, f = _sphere(n_theta=10, n_phi=16, radius=0.4, centre=(0.0, 0.45, 0.0))
    mixed = Material(base_color_factor=torch.tensor([0.9, 0.7, 0.5, 1.0]), metallic_factor=0.3,
                     roughness_factor=0.15, ior=1.33, transmission_factor=0.5)
    scene.add_mesh("ball", lg.SceneMesh(v, f, mixed))
    pane_v = torch.tensor([[-0.6, 0.0, 0.6], [0.6, 0.0, 0.6], [0.6, 1.0, 0.6], [-0.6, 1.0, 0.6]])
    pane = Material(base_color_factor=torch.tensor([0.8, 0.9, 1.0, 1.0]), metallic_factor=0.0,
                    roughness_factor=0.2, ior=1.0, transmission_factor=1.0)
    scene.add_mesh("pane", lg.SceneMesh(pane_v, QUAD, pane, double_sided=True))
    scene.add_light("point", lg.PointLight(torch.tensor([0.5, 1.4, 0.8]), torch.tensor(4.0),
                                           torch.tensor([1.0, 0.95, 0.9])))
    scene.add_light("sky", lg.EnvironmentLight(torch.rand(8, 16, 3, generator=g) * 0.8 + 0.1))
    cam = lg.Camera.look_at([0.2, 0.8, 2.2], [0.0, 0.4, 0.0], fov_y=0.8, width=16, height=16)
    return scene, cam


def _sky():
    """An environment map (sampled by luminance, seen by escaping rays) over rough metal, with a point light."""
    scene = lg.Scene()
    g = torch.Generator().manual_seed(9)
    v, f = _quad(1.0, 0.0)
    scene.add_mesh("floor", lg.SceneMesh(v, f, _material((0.6, 0.6, 0.5), ior=1.5, roughness=0.6)))
    v, f = _sphere()
    scene.add_mesh("ball", lg.SceneMesh(v, f, _material((0.9, 0.8, 0.6), metallic=1.0, roughness=0.3)))
    sky = torch.rand(8, 16, 3, generator=g) * 0.5
    sky[1, 3] = torch.tensor([20.0, 18.0, 15.0])  # a bright spot: luminance sampling matters
    scene.add_light("sky", lg.EnvironmentLight(sky))
    scene.add_light("bulb", lg.PointLight(torch.tensor([-0.5, 1.2, 0.6]), torch.tensor(1.0)))
    cam = lg.Camera.look_at([0.0, 1.0, 2.4], [0.0, 0.4, 0.0], fov_y=1.0, width=16, height=16)
    return scene, cam


def _specular():
    """The Cornell box with KHR_materials_specular weights: Lambertian walls (weight 0, Mitsuba's diffuse), a
    half-weight coat on the floor, and a metal-and-coat sphere (weight 0.3, metallic 0.4) under a point light."""
    scene, cam = _cornell()
    for name, mesh in scene.meshes.items():
        mesh.material.specular_factor = torch.tensor(0.5 if name == "floor" else 0.0)
    v, f = _sphere(radius=0.35, centre=(0.2, -0.6, 0.1))
    ball = _material((0.8, 0.6, 0.3), metallic=0.4, roughness=0.4, ior=1.5)
    ball.specular_factor = torch.tensor(0.3)
    scene.add_mesh("ball", lg.SceneMesh(v, f, ball))
    scene.add_light("bulb", lg.PointLight(torch.tensor([-0.5, 0.5, -0.3]), torch.tensor(1.5)))
    return scene, cam


def _linear_spots():
    """The punctual scene under Mitsuba's spot edge (a ramp in the angle), one spot wide, one with a hard edge."""
    scene, cam = _punctual()
    scene.lights["spot"].falloff = "linear"
    scene.add_light("hard", lg.SpotLight(torch.tensor([0.6, 1.4, -0.2]), torch.tensor([-0.3, -1.0, 0.2]),
                                         torch.tensor(4.0), inner_angle=0.35, outer_angle=0.35, falloff="linear"))
    return scene, cam


def _beckmann():
    """Beckmann's microfacets (Mitsuba's default): the metal scene's ball and glossy floor with
    ``microfacet="beckmann"`` (a rough gold ball, a dielectric-coated floor at roughness 0.5), a GGX card beside them,
    under the area lamp, the point light and a sky (every light's MIS against the Beckmann lobe's density)."""
    scene, cam = _metal()
    for name in ("floor", "ball"):
        scene.meshes[name].material.microfacet = "beckmann"
    v, f = _quad(0.3, 0.0)
    card = v[:, [1, 0, 2]] + torch.tensor([-0.7, 0.3, -0.3])  # upright, facing +z
    scene.add_mesh("card", lg.SceneMesh(card, f, _material((0.3, 0.6, 0.9), metallic=1.0, roughness=0.3)))
    sky = torch.rand(8, 16, 3, generator=torch.Generator().manual_seed(4)) * 0.4
    sky[2, 5] = torch.tensor([12.0, 10.0, 8.0])
    scene.add_light("sky", lg.EnvironmentLight(sky))
    return scene, cam


def _beckmann_glass():
    """Beckmann's microfacets through glass (Mitsuba's default ``roughdielectric``): the glass scene's ball with
    ``microfacet="beckmann"`` and a rough mixed ball (roughness 0.7, transmission 0.5, metallic 0.3: the opaque
    lobes Beckmann's too) beside it."""
    scene, cam = _glass()
    scene.meshes["ball"].material.microfacet = "beckmann"
    v, f = _sphere(n_theta=10, n_phi=16, radius=0.3, centre=(0.7, 0.35, 0.3))
    mixed = Material(base_color_factor=torch.tensor([0.9, 0.7, 0.5, 1.0]), metallic_factor=0.3,
                     roughness_factor=0.7, ior=1.33, transmission_factor=0.5, microfacet="beckmann")
    scene.add_mesh("mixed", lg.SceneMesh(v, f, mixed))
    return scene, cam


def _thin_sheets():
    """Thin dielectric sheets (``Material.thin_dielectric``, Mitsuba's ``thindielectric``): the partial-glass scene's
    pane a tinted sheet of ior 1.5 (two deltas: the mirror and straight through), its ball a sheet mixed with a rough
    metal (transmission 0.6, metallic 0.2): the light samples see only the opaque lobes; a plastic card given a
    transmission."""
    scene, cam = _partial_glass()
    pane, ball = scene.meshes["pane"].material, scene.meshes["ball"].material
    pane.ior, pane.thin_dielectric = torch.tensor(1.5), True
    ball.ior, ball.thin_dielectric, ball.transmission_factor = torch.tensor(1.5), True, torch.tensor(0.6)
    ball.metallic_factor, ball.roughness_factor = torch.tensor(0.2), torch.tensor(0.3)
    v, f = _quad(0.3, 0.0)  # and a plastic card given a transmission (the plastic does not read it)
    card = _material((0.2, 0.5, 0.3), roughness=0.4, ior=1.5)
    card.plastic, card.transmission_factor = True, torch.tensor(0.7)
    scene.add_mesh("card", lg.SceneMesh(v[:, [0, 2, 1]] + torch.tensor([0.8, 0.4, 0.0]), f, card, double_sided=True))
    return scene, cam


def _with_cards_and_sky(scene, cam, card_material):
    """``scene`` with an upright double-sided card of ``card_material`` (the model under test, often sampled),
    a glTF card beside it and a sky of one bright texel: the Mitsuba models' scenes' common part."""
    v, f = _quad(0.5, 0.0)
    card = v[:, [0, 2, 1]] + torch.tensor([-0.7, 0.5, -0.3])  # upright, in the plane z = -0.3
    scene.add_mesh("card", lg.SceneMesh(card, f, card_material, double_sided=True))
    scene.add_mesh("gltf", lg.SceneMesh(card + torch.tensor([1.2, 0.0, 0.0]), f, _material((0.8, 0.2, 0.2),
                                                                                           roughness=0.4, ior=1.5)))
    sky = torch.rand(8, 16, 3, generator=torch.Generator().manual_seed(5)) * 0.4
    sky[2, 9] = torch.tensor([12.0, 10.0, 8.0])
    scene.add_light("sky", lg.EnvironmentLight(sky))
    return scene, cam


def _plastic():
    """Mitsuba's plastic: the metal scene's floor a GGX rough plastic (roughness 0.5), the ball a smooth plastic
    (roughness 0), a Beckmann rough plastic card and a glTF card beside them, under the area lamp, the point light
    and a sky (every light's MIS against the plastic's two lobes)."""
    scene, cam = _metal()
    floor, ball = scene.meshes["floor"].material, scene.meshes["ball"].material
    floor.plastic, floor.metallic_factor = True, torch.tensor(0.0)
    ball.plastic, ball.metallic_factor, ball.roughness_factor = True, torch.tensor(0.0), torch.tensor(0.0)
    ball.ior = torch.tensor(1.6)
    m = _material((0.05, 0.1, 0.2), roughness=0.3, ior=1.5)  # (dark: its specular lobe is often sampled)
    m.plastic, m.microfacet = True, "beckmann"
    return _with_cards_and_sky(scene, cam, m)


def _principled():
    """Mitsuba's principled: the metal scene's floor principled (roughness 0.5, ior 1.45), the ball principled and
    partly metallic (roughness 0.2), a nearly smooth principled card (roughness 0.02) and a glTF card beside them,
    under the area lamp, the point light and a sky (every light's MIS against the principled lobes)."""
    scene, cam = _metal()
    floor, ball = scene.meshes["floor"].material, scene.meshes["ball"].material
    floor.principled, floor.metallic_factor, floor.ior = True, torch.tensor(0.0), torch.tensor(1.45)
    ball.principled, ball.metallic_factor, ball.roughness_factor = True, torch.tensor(0.4), torch.tensor(0.2)
    m = _material((0.1, 0.3, 0.6), roughness=0.02, ior=1.5)
    m.principled = True
    return _with_cards_and_sky(scene, cam, m)


def _principled_lobes():
    """:func:`_principled` with the other lobes (``Material.principled_lobes``): the ball all six (a glossy
    clearcoat), the floor tinted and flattened without a clearcoat, the card without lobes (the opaque base beside
    them); every light's MIS against the clearcoat's GTR1 lobe too."""
    scene, cam = _principled()
    ball = scene.meshes["ball"].material
    ball.principled_lobes, ball.ior = torch.tensor([0.3, 0.6, 0.4, 0.8, 0.7, 0.3]), torch.tensor(1.5)
    scene.meshes["floor"].material.principled_lobes = torch.tensor([1.0, 0.4, 0.0, 0.0, 0.0, 0.5])
    return scene, cam


def _conductor():
    """Mitsuba's conductor: the metal scene's floor Beckmann chromium (roughness 0.5), the ball GGX gold
    (roughness 0.2), a nearly smooth card of AlSb (roughness 0.02; its red channel ``eta = k = 0``, a perfect
    mirror) and a glTF card beside them, under the area lamp, the point light and a sky."""
    scene, cam = _metal()
    metals = {"floor": ((4.36968, 2.9165, 1.6549), (5.20652, 4.23133, 3.7547), 0.5, "beckmann"),
              "ball": ((0.14303, 0.37527, 1.44204), (3.98302, 2.38558, 1.6034), 0.2, "ggx")}
    for name, (eta, k, roughness, microfacet) in metals.items():
        m = scene.meshes[name].material
        m.conductor_eta, m.conductor_k = torch.tensor(eta), torch.tensor(k)
        m.roughness_factor, m.microfacet = torch.tensor(roughness), microfacet
    m = _material((0.9, 0.4, 0.5), roughness=0.02, ior=1.5)
    m.conductor_eta, m.conductor_k = torch.tensor([0.0, 4.13937, 4.66925]), torch.tensor([0.0, 0.09401, 1.30057])
    return _with_cards_and_sky(scene, cam, m)


def _delta_specular():
    """``Material.delta_specular`` (Mitsuba's smooth BSDFs: delta lights never meet their specular lobes): the metal
    scene's floor a smooth plastic, its ball a gold conductor marked but rough (0.3: ordinary lobes), a smooth glass
    card and a glTF card beside them, under the area lamp, the point light, a spot, a sun and a sky (delta lights
    and lights with a density)."""
    scene, cam = _metal()
    floor, ball = scene.meshes["floor"].material, scene.meshes["ball"].material
    floor.plastic, floor.metallic_factor, floor.roughness_factor = True, torch.tensor(0.0), torch.tensor(0.0)
    floor.delta_specular = True
    ball.conductor_eta, ball.conductor_k = torch.tensor([0.14303, 0.37527, 1.44204]), torch.tensor([3.98302, 2.38558,
                                                                                                    1.6034])
    ball.roughness_factor = torch.tensor(0.3)
    ball.delta_specular = True
    glass = _material((0.9, 0.95, 1.0), roughness=0.0, ior=1.5)
    glass.transmission_factor = torch.tensor(1.0)
    glass.delta_specular = True
    scene.add_light("spot", lg.SpotLight(torch.tensor([-0.8, 1.5, 0.3]), torch.tensor([0.4, -1.0, -0.1]),
                                         torch.tensor(6.0), inner_angle=0.2, outer_angle=0.6))
    scene.add_light("sun", lg.DirectionalLight(torch.tensor([0.3, -1.0, 0.2]), torch.tensor(0.8)))
    return _with_cards_and_sky(scene, cam, glass)


def _anisotropic():
    """Anisotropic lobes (``Material.roughness_aspect``, in each triangle's frame: the first edge, no texture
    coordinates): the conductor scene's Beckmann chromium floor of aspect 3, its GGX gold ball of aspect 0.4 and
    its nearly smooth AlSb card of aspect 2 (each width at its floor then), beside the glTF card."""
    scene, cam = _conductor()
    for name, aspect in (("floor", 3.0), ("ball", 0.4), ("card", 2.0)):
        scene.meshes[name].material.roughness_aspect = torch.tensor(aspect)
    return scene, cam


def _anisotropic_principled():
    """Anisotropic principled lobes: :func:`_principled_lobes`' ball (all six lobes) of aspect 0.5, its floor
    (tinted, flattened) of aspect 2.5 and its nearly smooth card of aspect 0.3 (the clearcoat and the cosine lobe
    sampled in the tangent's frame too)."""
    scene, cam = _principled_lobes()
    for name, aspect in (("floor", 2.5), ("ball", 0.5), ("card", 0.3)):
        scene.meshes[name].material.roughness_aspect = torch.tensor(aspect)
    return scene, cam


def _anisotropic_glass():
    """Anisotropic rough dielectrics (``roughness_aspect`` on transmitting materials: Mitsuba's ``roughdielectric``
    with ``alpha_u`` / ``alpha_v``): the Beckmann glass scene's ball GGX again with aspect 3, its mixed ball
    (transmission 0.5, metallic 0.3, Beckmann) with aspect 0.4 on its transmitting fraction."""
    scene, cam = _beckmann_glass()
    scene.meshes["ball"].material.microfacet = "ggx"
    scene.meshes["ball"].material.roughness_aspect = torch.tensor(3.0)
    scene.meshes["mixed"].material.roughness_aspect = torch.tensor(0.4)
    return scene, cam


SCENES = {"cornell": _cornell, "linear_spots": _linear_spots, "punctual": _punctual, "metal": _metal, "mixed": _mixed, "textured": _textured,
          "sky": _sky, "specular": _specular, "normal_mapped": _normal_mapped, "glass": _glass,
          "partial_glass": _partial_glass, "beckmann": _beckmann, "plastic": _plastic,
          "thin_sheets": _thin_sheets, "beckmann_glass": _beckmann_glass, "principled": _principled,
          "shadowed_normal_maps": _shadowed_normal_maps, "conductor": _conductor, "delta_specular": _delta_specular,
          "principled_lobes": _principled_lobes, "anisotropic": _anisotropic,
          "anisotropic_principled": _anisotropic_principled, "anisotropic_glass": _anisotropic_glass}


def _compare(scene, cam, *, spp=4, light_sampling="solid_angle", **settings):
    ts = _trace_scene(scene, light_sampling)
    assert fused_unsupported(ts) is None
    o, d = _camera_rays(cam, spp, 3, F32)
    hits_f, hits_t = [], []
    fused = sample_paths_fused(ts, o, d, hits=hits_f, **settings)
    torch_ = sample_paths(ts, o, d, hits=hits_t, **settings)
    assert torch.equal(hits_f[0], hits_t[0])
    scale = torch.clamp(torch_.abs().amax(-1), min=max(1e-2 * float(torch_.abs().mean()), 1e-12))
    rel = (fused - torch_).abs().amax(-1) / scale
    return fused, torch_, rel


@pytest.mark.parametrize("name", sorted(SCENES))
@pytest.mark.parametrize("max_depth, rr_depth", [(1, 5), (2, 5), (8, 3), (-1, 2)])
def test_the_fused_kernel_traces_the_same_paths_as_the_pytorch_transport(name, max_depth, rr_depth):
    scene, cam = SCENES[name]()
    fused, torch_, rel = _compare(scene, cam, max_depth=max_depth, rr_depth=rr_depth, seed=12345)
    if max_depth != 1 or name in ("cornell", "mixed", "sky"):  # (depth 1 shows emitters only: these have some)
        assert float(torch_.mean()) > 0.01  # something to compare
    assert float((rel > RAY_RTOL).float().mean()) <= BRANCH_FRACTION
    # the image they estimate agrees far better than its noise
    assert torch.allclose(fused.mean(0), torch_.mean(0), rtol=2e-3)


@pytest.mark.parametrize("name", ["cornell", "metal", "mixed", "textured"])
@pytest.mark.parametrize("light_sampling", ["area", "auto"])
def test_area_lights_sampled_by_area_trace_the_same_paths_in_both(name, light_sampling):
    """Area lights sampled by area (everywhere, or by ``"auto"`` far from the lamp): the kernel's samples and
    densities (next-event estimation, and the MIS weight of the emission BSDF samples find) are the twin's."""
    scene, cam = SCENES[name]()
    fused, torch_, rel = _compare(scene, cam, max_depth=8, rr_depth=3, seed=12345, light_sampling=light_sampling)
    assert float(torch_.mean()) > 0.01
    assert float((rel > RAY_RTOL).float().mean()) <= BRANCH_FRACTION
    assert torch.allclose(fused.mean(0), torch_.mean(0), rtol=2e-3)
    # another estimate than solid-angle sampling's (the same paths, other light samples)
    solid, _, _ = _compare(scene, cam, max_depth=8, rr_depth=3, seed=12345)
    assert not torch.equal(solid, fused)


def test_hidden_emitters_are_black_in_both():
    scene, cam = _cornell()
    fused, torch_, rel = _compare(scene, cam, max_depth=3, rr_depth=5, seed=7, hide_emitters=True)
    assert float((rel > RAY_RTOL).float().mean()) <= BRANCH_FRACTION
    shown, _, _ = _compare(scene, cam, max_depth=3, rr_depth=5, seed=7)
    assert float(fused.sum()) < float(shown.sum())  # the lamp, seen directly, is gone


def test_unsupported_scenes_fall_back_and_say_why():
    scene, _ = _cornell()
    ts = _trace_scene(scene)
    assert fused_unsupported(ts) is None and use_fused(ts)
    assert not use_fused(ts, requested=False)
    scene64 = lg.Scene()
    v, f = _quad(1.0, 0.0)
    white64 = Material(base_color_factor=torch.ones(4, dtype=torch.float64))
    scene64.add_mesh("floor", lg.SceneMesh(v.double(), f, white64))
    scene64.add_light("sun", lg.DirectionalLight(torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64)))
    assert "float64" in fused_unsupported(_trace_scene(scene64))
    textured = lg.Scene()
    textured.add_mesh("floor", lg.SceneMesh(v, f, Material(metallic_roughness_texture=torch.full((2, 4, 4, 3), 0.5))))
    textured.add_light("sun", lg.DirectionalLight(torch.tensor([0.0, -1.0, 0.0])))
    assert "metallic_roughness_texture" in fused_unsupported(_trace_scene(textured))
    glass = lg.Scene()
    glass.add_mesh("floor", lg.SceneMesh(v, f, Material(transmission_factor=1.0, metallic_factor=0.0)))
    glass.add_light("sun", lg.DirectionalLight(torch.tensor([0.0, -1.0, 0.0])))
    assert fused_unsupported(_trace_scene(glass)) is None  # glass: the kernel's rough dielectric
    glass.meshes["floor"].material.thin_dielectric = True
    assert fused_unsupported(_trace_scene(glass)) is None  # a thin sheet: the kernel's two deltas
    glass.meshes["floor"].material.thin_dielectric = False
    milk = HomogeneousMedium(sigma_a=torch.tensor([0.1, 0.1, 0.1]), sigma_s=torch.tensor([1.0, 1.0, 1.0]))
    glass.meshes["floor"].material.interior = milk
    assert "medium" in fused_unsupported(_trace_scene(glass))
    opaque = lg.Scene()  # an opaque part's medium is never entered (the twin builds no media table): the kernel's
    opaque.add_mesh("floor", lg.SceneMesh(v, f, Material(interior=milk)))
    opaque.add_light("sun", lg.DirectionalLight(torch.tensor([0.0, -1.0, 0.0])))
    assert fused_unsupported(_trace_scene(opaque)) is None
    sky = lg.Scene()
    sky.add_mesh("floor", lg.SceneMesh(v, f, Material()))
    sky.add_light("sky", lg.EnvironmentLight(torch.ones(4, 8, 1)))
    assert "environment" in fused_unsupported(_trace_scene(sky))
    # a TraceScene field the kernel does not know (participating media, say), once set, sends it to PyTorch
    @dataclasses.dataclass
    class WithMedia(TraceScene):
        media: object = None

    plain = _trace_scene(scene)
    with_media = WithMedia(**{f.name: getattr(plain, f.name) for f in dataclasses.fields(plain)})
    assert fused_unsupported(with_media) is None
    with_media.media = object()
    assert "'media'" in fused_unsupported(with_media)
    with pytest.raises(ValueError, match="environment"):
        o, d = _camera_rays(lg.Camera.look_at([0.0, 2.0, 0.01], [0.0, 0.0, 0.0], fov_y=0.6, width=4, height=4),
                            1, 0, F32)
        sample_paths_fused(_trace_scene(sky), o, d, max_depth=2, rr_depth=5, seed=0)


def test_the_integrator_uses_the_kernel_by_default_and_pytorch_on_request(monkeypatch):
    scene, cam = _punctual()
    fused = lg.render(scene, cam, integrator="path", spp=2, seed=3).rgb
    torch_ = lg.render(scene, cam, integrator=lg.integrators.PathIntegrator(use_fused_kernel=False), spp=2,
                       seed=3).rgb
    monkeypatch.setenv(TRANSPORT_ENV, "torch")
    by_env = lg.render(scene, cam, integrator="path", spp=2, seed=3).rgb
    assert torch.equal(by_env, torch_)
    assert not torch.equal(fused, torch_)  # a different implementation ...
    assert torch.allclose(fused, torch_, rtol=1e-3, atol=1e-4)  # ... of the same paths


def test_gradients_replay_the_fused_primal():
    """The adjoint's per-path radiance comes from the kernel: the reflectance gradient equals the one with
    the PyTorch primal, up to the float32 differences of L (the PyTorch replay in both: ``fused_adjoint`` off;
    tests/integrators/test_fused_adjoint.py tests the replay on the kernel)."""
    scene, cam = _cornell()
    albedo = scene.meshes["back"].material.base_color_factor.requires_grad_(True)
    grads = []
    for use in (True, False):
        integrator = lg.integrators.PathIntegrator(max_depth=4, use_fused_kernel=use, edge_samples=0,
                                                   fused_adjoint=False)
        img = lg.render(scene, cam, integrator=integrator, spp=2, seed=1).rgb
        (g,) = torch.autograd.grad(img.mean(), albedo)
        grads.append(g)
    assert float(grads[0][:3].abs().min()) > 0
    assert torch.allclose(grads[0], grads[1], rtol=1e-3, atol=1e-7)


def test_beckmann_gradients_replay_the_fused_primal_on_pytorch():
    """A Beckmann part's gradients on the PyTorch replay (``fused_adjoint=False``): from the fused primal's radiance
    equal to the PyTorch primal's to float32 rounding. (The fused replay's Beckmann derivatives:
    ``tests/integrators/test_fused_adjoint.py``.)"""
    grads = []
    for use in (True, False):
        scene, cam = _beckmann()
        roughness = scene.meshes["ball"].material.roughness_factor
        roughness = torch.as_tensor(roughness, dtype=F32).clone().requires_grad_(True)
        scene.meshes["ball"].material.roughness_factor = roughness
        assert fused_adjoint_unsupported(_trace_scene(scene), cam) is None
        integrator = lg.integrators.PathIntegrator(max_depth=4, use_fused_kernel=use, edge_samples=0,
                                                   shadow_edge_samples=0, fused_adjoint=False)
        img = lg.render(scene, cam, integrator=integrator, spp=2, seed=1).rgb
        (g,) = torch.autograd.grad(img.mean(), roughness)
        grads.append(g)
    assert float(grads[0].abs()) > 0
    assert torch.allclose(grads[0], grads[1], rtol=2e-3, atol=1e-7), grads


def _replayed_gradients(build, part, names, check, fused_adjoint=True):
    """``[from the fused primal, from the PyTorch primal]``: the gradients of the image mean w.r.t. ``part``'s
    material values ``names`` (flattened), by the PyTorch replay (no boundary terms), after ``check(ts, cam)``."""
    grads = []
    for use in (True, False):
        scene, cam = build()
        m = scene.meshes[part].material
        params = [torch.as_tensor(getattr(m, k), dtype=F32).clone().requires_grad_(True) for k in names]
        for name, param in zip(names, params):
            setattr(m, name, param)
        check(_trace_scene(scene), cam)
        integrator = lg.integrators.PathIntegrator(max_depth=4, use_fused_kernel=use, edge_samples=0,
                                                   shadow_edge_samples=0, fused_adjoint=fused_adjoint)
        img = lg.render(scene, cam, integrator=integrator, spp=2, seed=1).rgb
        grads.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(img.mean(), params)]))
    return grads


def test_plastic_gradients_replay_the_fused_primal_on_pytorch():
    """A plastic part's gradients (its base colour and, through its table, its roughness and ior) on the PyTorch
    replay (``fused_adjoint=False``): from the fused primal's radiance equal to the PyTorch primal's to float32
    rounding. (The fused replay's plastic derivatives: ``tests/integrators/test_fused_adjoint.py``.)"""
    def check(ts, cam):
        assert use_fused(ts) and fused_adjoint_unsupported(ts, cam) is None

    grads = _replayed_gradients(_plastic, "floor", ("base_color_factor", "roughness_factor", "ior"), check,
                                fused_adjoint=False)
    assert bool((grads[0][[0, 4, 5]].abs() > 0).all()), grads  # base colour (red), roughness, ior
    assert torch.allclose(grads[0], grads[1], rtol=2e-3, atol=1e-7), grads


def test_principled_lobes_gradients_replay_the_fused_primal_on_pytorch():
    """A principled part with its other lobes: the fused kernel renders it, the fused replay declines (their
    derivatives are not in it) and the PyTorch replay differentiates the fused primal's paths (with PyTorch's
    BSDF samples: the replay kernels' are the opaque base's), equal to the all-PyTorch gradients to float32
    rounding, the lobes' own weights included."""
    def check(ts, cam):
        assert use_fused(ts) and "principled_lobes" in fused_adjoint_unsupported(ts, cam)

    grads = _replayed_gradients(_principled_lobes, "ball", ("base_color_factor", "roughness_factor",
                                                            "principled_lobes"), check)
    assert bool((grads[0][[0, 4, 5, 6, 7, 8, 9, 10]].abs() > 0).all()), grads  # base colour, roughness, lobes
    assert torch.allclose(grads[0], grads[1], rtol=2e-3, atol=1e-7), grads


@pytest.mark.parametrize("build, part, reason", [(_anisotropic, "floor", "roughness_aspect"),
                                                 (_anisotropic_principled, "ball", "principled_lobes"),
                                                 (_anisotropic_glass, "ball", "roughness_aspect")])
def test_anisotropic_gradients_replay_the_fused_primal_on_pytorch(build, part, reason):
    """Anisotropic lobes: the fused kernel renders them, the fused replay declines (naming the aspect) and the
    PyTorch replay differentiates the fused primal's paths with PyTorch's BSDF samples (the replay kernels' are
    isotropic), equal to the all-PyTorch gradients to float32 rounding, the aspect's own included."""
    def check(ts, cam):
        assert use_fused(ts) and reason in fused_adjoint_unsupported(ts, cam)

    grads = _replayed_gradients(build, part, ("base_color_factor", "roughness_factor", "roughness_aspect"), check)
    assert bool((grads[0][[0, 4, 5]].abs() > 0).all()), grads  # base colour (red), roughness, aspect
    assert torch.allclose(grads[0], grads[1], rtol=2e-3, atol=1e-7), grads


def test_thin_sheet_gradients_replay_the_fused_primal_on_pytorch():
    """A thin sheet's gradients (the pane's tint and ior, through its delta lobes' weights): the fused primal's
    radiance, then the PyTorch replay, equal to the PyTorch primal's to float32 rounding."""
    def check(ts, cam):
        assert use_fused(ts)

    grads = _replayed_gradients(_thin_sheets, "pane", ("base_color_factor", "ior"), check)
    assert bool((grads[0][[0, 1, 2, 4]].abs() > 0).all()), grads  # the tint (RGB) and the ior
    assert torch.allclose(grads[0], grads[1], rtol=2e-3, atol=1e-7), grads


@pytest.mark.cuda
@pytest.mark.parametrize("name", ["cornell", "mixed", "normal_mapped", "glass", "plastic", "thin_sheets",
                                  "beckmann_glass", "principled", "shadowed_normal_maps", "conductor",
                                  "principled_lobes", "delta_specular", "anisotropic", "anisotropic_principled",
                                  "anisotropic_glass"])
@pytest.mark.parametrize("light_sampling", ["solid_angle", "auto"])
def test_the_kernel_runs_on_cuda_as_its_twin(name, light_sampling):
    """The same kernel on a CUDA device: the scene built there, the kernel against the PyTorch transport there."""
    with torch.device("cuda"):
        scene, cam = SCENES[name]()
        fused, torch_, rel = _compare(scene, cam, max_depth=8, rr_depth=3, seed=12345, light_sampling=light_sampling)
    assert fused.device.type == "cuda"
    assert float(torch_.mean()) > 0.01
    assert float((rel > RAY_RTOL).float().mean()) <= BRANCH_FRACTION


def test_the_kernel_bends_shading_normals_as_the_transport():
    from lumigrad.kernels import path_kernels
    from lumigrad.raytrace import transport
    assert float(path_kernels.SHADING_NORMAL_MIN_COS) == transport.SHADING_NORMAL_MIN_COS


def test_the_kernel_clamps_area_densities_as_the_emitters():
    from lumigrad.kernels import path_kernels
    from lumigrad.shading import emitters, lights
    assert float(path_kernels.MIN_LIGHT_DISTANCE) == lights.MIN_LIGHT_DISTANCE
    assert float(path_kernels._MIN_COS) == emitters._MIN_COS


def test_a_point_light_closer_than_its_distance_clamp_shades_as_in_the_twin():
    """A point light 5e-5 above a glossy floor, seen close up: within ``MIN_LIGHT_DISTANCE`` (1e-4) of it the
    light's direction ``v / max(|v|, 1e-4)`` is shorter than 1. The BSDF must see it normalised, as the twin's
    does (the cosine not), or the glossy lobe's value is off by up to 20x."""
    scene = lg.Scene()
    v, f = _quad(1.0, 0.0)
    scene.add_mesh("floor", lg.SceneMesh(v, f, _material((0.6, 0.5, 0.4), metallic=0.5, roughness=0.3, ior=1.5)))
    scene.add_light("point", lg.PointLight(torch.tensor([0.0, 5e-5, 0.0]), torch.tensor(1e-6),
                                           torch.tensor([1.0, 1.0, 1.0])))
    cam = lg.Camera.look_at([0.0, 1.0, 1e-4], [0.0, 0.0, 0.0], fov_y=4e-4, width=8, height=8)
    fused, torch_, rel = _compare(scene, cam, max_depth=2, rr_depth=5, seed=7)
    assert float(torch_.mean()) > 1e-3  # lit
    assert float((rel > RAY_RTOL).float().mean()) <= BRANCH_FRACTION


def test_a_normal_map_on_a_curved_part_is_applied_after_the_facing_bend():
    """A coarse ball with a normal map seen close up at its silhouette, where interpolated normals turn from the
    viewer and the facing bend lifts them before the map perturbs them (``surface_at``'s order): the kernel
    traces the twin's paths there too."""
    scene = lg.Scene()
    g = torch.Generator().manual_seed(3)
    v, f = _sphere(n_theta=6, n_phi=8, radius=0.5, centre=(0.0, 0.0, 0.0))
    theta = torch.atan2(v[:, 2], v[:, 0])
    uv = torch.stack([theta / (2 * math.pi) + 0.5, torch.acos((v[:, 1] / 0.5).clamp(-1, 1)) / math.pi], -1)
    ball = Material(base_color_factor=torch.tensor([0.8, 0.6, 0.4, 1.0]), metallic_factor=0.7,
                    roughness_factor=0.3, ior=1.5, normal_texture=_normal_map(g, 6, 8, 1.0), normal_scale=1.3)
    scene.add_mesh("ball", lg.SceneMesh(v, f, ball, uv=uv))
    scene.add_light("point", lg.PointLight(torch.tensor([0.0, 0.3, 1.5]), torch.tensor(3.0),
                                           torch.tensor([1.0, 1.0, 1.0])))
    scene.add_light("sun", lg.DirectionalLight(torch.tensor([0.0, -0.2, -1.0]), torch.tensor(1.0)))
    # the camera looks past the ball's right rim (x = 0.5 at the equator)
    cam = lg.Camera.look_at([0.45, 0.0, 3.0], [0.45, 0.0, 0.0], fov_y=0.08, width=16, height=16)
    fused, torch_, rel = _compare(scene, cam, max_depth=3, rr_depth=5, seed=5)
    assert float(torch_.mean()) > 1e-3
    assert float((rel > RAY_RTOL).float().mean()) <= BRANCH_FRACTION


def test_a_transmission_pushed_below_zero_traces_as_in_the_twin():
    """An optimiser may push a transmission factor out of [0, 1] (``Material`` checks it only when built): the
    kernel applies it as the twin does, whatever its sign."""
    scene, cam = _partial_glass()
    scene.meshes["ball"].material.transmission_factor = torch.tensor(-0.05)
    fused, torch_, rel = _compare(scene, cam, max_depth=8, rr_depth=3, seed=12345)
    assert float(torch_.mean()) > 0.01
    assert float((rel > RAY_RTOL).float().mean()) <= BRANCH_FRACTION


#: The scenes the path kernel's lean variants trace (opaque GGX glTF parts, no normal map).
LEAN = {"cornell", "linear_spots", "punctual", "metal", "mixed", "textured", "sky", "specular"}


@pytest.mark.parametrize("name", sorted(SCENES))
def test_the_lean_kernel_variant_traces_the_same_bits_as_the_full_one(name):
    from lumigrad.kernels import path_trace

    scene, cam = SCENES[name]()
    ts = _trace_scene(scene, "solid_angle")
    tables = path_tables(ts)
    assert tables.lean == path_trace.lean_materials(tables) == (name in LEAN)  # (from the materials, the tables)
    o, d = _camera_rays(cam, 2, 3, F32)
    settings = dict(max_depth=8, rr_depth=3, seed=7)
    chosen = sample_paths_fused(ts, o, d, tables=tables, **settings)
    full = sample_paths_fused(ts, o, d, tables=dataclasses.replace(tables, lean=False), **settings)
    assert torch.equal(full, chosen)
    # and the replay's compiled variant (the adjoint's code present, off) gives the primal the same bits too
    verts = ts.verts.detach().contiguous()
    replay_variant = path_trace.trace_paths_tables(bvh_for(verts, ts.faces), verts, tables, o, d, depth_limit=8,
                                                   rr_depth=3, seed=7, hide_emitters=False, for_replay=True)[0]
    assert torch.equal(replay_variant, chosen)


def test_an_anisotropic_part_without_tangents_turns_in_the_default_frame_in_both():
    """A hand-built scene without its tangent table: an anisotropic part's lobe keeps both widths in the normal's
    default frame, in the kernel as in the transport (not the isotropic lobe)."""
    scene, cam = _anisotropic()
    ts = dataclasses.replace(_trace_scene(scene), tangents=None)
    o, d = _camera_rays(cam, 4, 3, F32)
    settings = dict(max_depth=4, rr_depth=4, seed=3)
    fused, torch_ = sample_paths_fused(ts, o, d, **settings), sample_paths(ts, o, d, **settings)
    scale = torch.clamp(torch_.abs().amax(-1), min=max(1e-2 * float(torch_.abs().mean()), 1e-12))
    assert float(((fused - torch_).abs().amax(-1) / scale > 1e-3).double().mean()) < 0.01


def test_an_aspect_left_on_a_material_no_longer_a_conductor_is_refused_by_both():
    scene, cam = _anisotropic_principled()
    scene.meshes["card"].material.principled = False
    for use in (True, False):
        with pytest.raises(ValueError, match="roughness_aspect"):
            lg.render(scene, cam, integrator=lg.integrators.PathIntegrator(max_depth=2, use_fused_kernel=use), spp=1)
