"""Shading normals at silhouettes (``lumigrad.raytrace.transport.surface_at``): the interpolated normal of a
smooth-shaded mesh is bent so that it never faces away from the viewer where the geometry faces it.

Without the bend, a sliver of the front faces along the silhouette (about 0.01 pixel wide) had ``n . wo < 0``
and every BSDF 0 there: a black rim that edge sampling, which evaluates the radiance 1e-3 pixel from the
silhouette, took for the surface's colour, so silhouette gradients of smooth-shaded meshes came out 20-75% off
(``tests/integrators/test_path_gradients.py``, the ball cases)."""

import torch

import lumigrad as lg
from lumigrad.integrators.path import _trace_scene  # noqa: PLC2701 - the integrator's own scene tables
from lumigrad.kernels.bvh import bvh_for
from lumigrad.raytrace.edges import sample_primary_edges
from lumigrad.raytrace.transport import sample_paths, surface_at

F64 = torch.float64


def _ball_in_a_grey_sky():
    scene = lg.Scene()
    v, f = lg.geometry.icosphere(3, radius=0.5, dtype=F64)
    material = lg.shading.Material(base_color_factor=torch.tensor([0.8, 0.5, 0.2, 1.0], dtype=F64),
                                   metallic_factor=0.0, roughness_factor=1.0, ior=1.0)
    scene.add_mesh("ball", lg.SceneMesh(v, f, material))
    scene.add_light("sky", lg.EnvironmentLight(torch.full((8, 16, 3), 0.4, dtype=F64)))
    cam = lg.Camera.look_at(torch.tensor([0.0, 0.0, -3.0], dtype=F64), torch.zeros(3, dtype=F64), fov_y=0.5,
                            width=24, height=24)
    return scene, cam


def _rays_beside_the_silhouette(scene, cam, pixels: float, count: int = 400):
    """Camera rays through points ``pixels`` from the ball's silhouette edges, on both sides."""
    ts = _trace_scene(scene)
    gen = torch.Generator().manual_seed(0)
    edges = sample_primary_edges(ts.verts, ts.faces, cam.K, cam.world_to_cam, cam.near, cam.width, cam.height,
                                 count, gen)
    uv = torch.cat([edges.points + pixels * edges.normals, edges.points - pixels * edges.normals]).detach()
    o_c, d_c = cam.ray_origins_directions(uv)
    R, t = cam.world_to_cam[:3, :3], cam.world_to_cam[:3, 3]
    d = d_c @ R
    return ts, (o_c - t) @ R, d / d.norm(dim=-1, keepdim=True)


def test_shading_normals_face_the_viewer_at_the_silhouette():
    scene, cam = _ball_in_a_grey_sky()
    ts, o, d = _rays_beside_the_silhouette(scene, cam, 1e-3)
    face, _, _ = bvh_for(ts.verts, ts.faces).closest_hit(o, d)
    rows = (face >= 0).nonzero()[:, 0]
    assert rows.numel() > 300  # about half the rays hit the ball
    si, _, ng, _ = surface_at(ts, face[rows], o[rows], d[rows])
    assert bool(((ng * si.wo).sum(-1) > 0).all())  # front hits
    assert bool(((si.normal * si.wo).sum(-1) > 0).all())  # was negative for 30% of them


def test_the_ball_is_as_bright_at_its_silhouette_as_just_inside():
    """Radiance 1e-3 pixel inside the silhouette (where edge sampling looks) against 0.1 pixel inside: the same
    to 5% (a grey sky lights a convex diffuse ball evenly). Measured 0.632 against 0.611; about 0.2 before the bend."""
    scene, cam = _ball_in_a_grey_sky()
    means = []
    for pixels in (1e-3, 0.1):
        ts, o, d = _rays_beside_the_silhouette(scene, cam, pixels)
        hits: list = []
        with torch.no_grad():
            L = sum(sample_paths(ts, o, d, max_depth=2, rr_depth=8, seed=2 * s + 5, hits=hits) for s in range(8)) / 8
        means.append(L[hits[0]].sum(-1).mean())
    assert torch.allclose(means[0], means[1], rtol=0.05), means
