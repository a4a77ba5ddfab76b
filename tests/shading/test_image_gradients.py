"""Gradients of a rendered image, end to end, against central finite differences.

The whole raster path: ``rasterize -> interpolate -> sample_material -> shade_direct + shade_environment
(+ emission) -> antialias``, in float64 (every op here supports it; ``texture`` then runs on its PyTorch
backend), on a textured UV sphere lit by a point light and an 8 x 16 equirectangular environment (split-sum
glossy through ``prefilter_ggx`` and SH diffuse through ``sh_project_equirect``). The loss is
``sum(w * image)`` with fixed random weights ``w``, so every pixel and channel counts.

Two kinds of check:

* Smooth parameters (roughness, metallic, albedo texels, light position and intensity, environment texels,
  emissive factor): visibility does not depend on them, so the loss is smooth in them away from a few known
  kinks (listed where they matter), and central differences with a step of 1e-5 must agree to a relative
  error below 1e-6. The float64 round-off of the difference is about ``1e-16 |loss| / step = 1e-9`` of the
  loss (~1e2 here) and the truncation error ``step^2 f''' ~ 1e-10``: measured relative errors are 1e-11 to
  3e-9 (up to 5e-8 for single entries a hundred times smaller than the largest).
* Vertices at the silhouette (visibility): (1) through ``antialias``, whose output is continuous in the
  geometry, a tiny step (1e-6) measures exactly the derivative backward must give (same 1e-6 tolerance);
  (2) against a hard render supersampled 8 x 8 and box-filtered (the true pixel integral that antialias
  approximates), with a step of about a fifth of a pixel, as in ``tests/raster/test_antialias.py``; the
  tolerances there are those of the approximation, explained in the test.
"""

from dataclasses import dataclass

import pytest
import torch

import lumigrad as lg
from lumigrad.shading import (Material, point_light, prefilter_ggx, sample_material, sh_project_equirect,
                              shade_direct, shade_environment)

from ..conftest import cosine, save_failure_images, uv_sphere

DT = torch.float64
SIZE = 24  # image is SIZE x SIZE
TEX = 8  # albedo texture is TEX x TEX x 3
LEVELS = [0.0, 0.25, 0.5, 0.75, 1.0]  # roughness of the pre-filtered environment maps
STEP = 1e-5  # finite-difference step for the smooth parameters
RTOL = 1e-6  # relative error allowed for the smooth parameters (measured <= 5e-8, see the module doc)


@dataclass
class Scene:
    verts: torch.Tensor  # [V, 3]
    faces: torch.Tensor  # [F, 3]
    uv: torch.Tensor  # [V, 2]
    camera: lg.Camera
    eye: torch.Tensor  # [3]
    weights: torch.Tensor  # [SIZE, SIZE, 3]


@pytest.fixture(scope="module")
def scene():
    verts, faces = uv_sphere(8, 14)
    # Planar uv along z into the middle of the texture: u = 0.5 + x / 4, v = 0.5 - y / 4 lies in a disc of
    # radius 1/4 around the centre, so the bilinear filter never reads the border texels (row or column 0 or
    # 7, whose footprints start at 13/16 or end at 3/16) nor the inner corners ((1, 1) etc., 0.265 away).
    uv = torch.stack([0.5 + 0.25 * verts[:, 0], 0.5 - 0.25 * verts[:, 1]], -1)
    eye = torch.tensor([0.6, 0.5, 2.9], dtype=DT)
    camera = lg.Camera.look_at(eye, torch.zeros(3, dtype=DT), torch.tensor([0.0, 1.0, 0.0], dtype=DT),
                               fov_y=0.75, width=SIZE, height=SIZE)
    weights = torch.rand(SIZE, SIZE, 3, generator=torch.Generator().manual_seed(1), dtype=DT)
    return Scene(verts, faces, uv, camera, eye, weights)


def _params(scene):
    g = torch.Generator().manual_seed(0)
    env = 0.2 + torch.rand(8, 16, 3, generator=g, dtype=DT)
    return {
        "verts": scene.verts.clone(),
        # sRGB-encoded texels in [0.2, 0.9]: away from srgb_decode's linear segment (x <= 0.04045).
        "albedo": 0.2 + 0.7 * torch.rand(TEX, TEX, 3, generator=g, dtype=DT),
        # 0.45 is 0.0125 from the nearest node of the split-sum table (cell centres (k + 0.5) / 32) and
        # between the pre-filtered levels 0.25 and 0.5: both are piecewise linear in roughness.
        "roughness": torch.tensor(0.45, dtype=DT),
        "metallic": torch.tensor(0.3, dtype=DT),
        "light_position": torch.tensor([1.5, 2.0, 2.5], dtype=DT),
        "light_intensity": torch.tensor([9.0, 8.0, 7.0], dtype=DT),
        # One environment, fed to the two lighting paths separately so that each can be checked alone.
        "env_prefiltered": env,
        "env_sh": env.clone(),
        "emissive": torch.tensor([0.05, 0.1, 0.02], dtype=DT),
    }


def _lighting(p):
    """SH radiance coefficients and pre-filtered maps of the environment(s) in ``p``."""
    return sh_project_equirect(p["env_sh"], 2), prefilter_ggx(p["env_prefiltered"], LEVELS, size=(8, 16))


def _render(scene, p, *, aa=True, camera=None, lighting=None):
    """The shaded, antialiased image ``[H, W, 3]`` of the sphere with parameters ``p``.

    ``lighting``: ``_lighting(p)`` computed once, for checks that do not perturb the environment (it is the
    costliest step of this small render).
    """
    camera = scene.camera if camera is None else camera
    sh, prefiltered = _lighting(p) if lighting is None else lighting
    verts, faces = p["verts"], scene.faces
    frags = lg.rasterize(verts, faces, camera)
    position = lg.interpolate(verts, frags, faces)
    normal = lg.interpolate(lg.vertex_normals(verts, faces), frags, faces)
    uv = lg.interpolate(scene.uv, frags, faces)
    material = Material(base_color_factor=torch.tensor([0.9, 0.85, 0.8, 1.0], dtype=DT),
                        metallic_factor=p["metallic"], roughness_factor=p["roughness"],
                        base_color_texture=p["albedo"], emissive_factor=p["emissive"])
    m = sample_material(material, uv, mask=frags.mask)
    mask = frags.mask[..., None]
    light = point_light(position, p["light_position"], p["light_intensity"])
    image = shade_direct(position, normal, scene.eye, m, [light], mask=mask)
    image = image + shade_environment(position, normal, scene.eye, m,
                                      sh_coeffs=sh, prefiltered=prefiltered, prefiltered_roughness=LEVELS,
                                      mask=mask)
    image = image + m["emission"] * mask
    return lg.antialias(image, frags, verts, faces, camera) if aa else image


def _loss(scene, p, **kw):
    return (scene.weights * _render(scene, p, **kw)).sum()


def _with(p, keys, value):
    """``p`` with every entry named in ``keys`` replaced by ``value`` (one leaf shared by several inputs)."""
    return {**p, **{k: value for k in keys}}


def _grad(scene, p, keys, **kw):
    """Backward-pass gradient of the loss w.r.t. the tensor shared by the entries ``keys``."""
    x = p[keys[0]].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(_loss(scene, _with(p, keys, x), **kw), x)
    return g


def _fd(scene, p, keys, index, step=STEP, loss=None, **kw):
    """Central difference of the loss w.r.t. element ``index`` (flat) of the tensor under ``keys``."""
    loss = _loss if loss is None else loss
    with torch.no_grad():
        up, down = p[keys[0]].clone(), p[keys[0]].clone()
        up.view(-1)[index] += step
        down.view(-1)[index] -= step
        return (float(loss(scene, _with(p, keys, up), **kw))
                - float(loss(scene, _with(p, keys, down), **kw))) / (2 * step)


def _check(g, fd, name):
    """Relative L2 error below RTOL, and elementwise agreement to RTOL (plus the FD round-off)."""
    g, fd = g.reshape(-1), fd.reshape(-1)
    err = float((g - fd).norm() / fd.norm())
    assert err < RTOL, f"{name}: relative error {err:.2e}; grad {g.tolist()} vs FD {fd.tolist()}"
    # Tiny entries: the FD round-off (~1e-9 absolute, see the module doc) is allowed on top of RTOL.
    torch.testing.assert_close(g, fd, rtol=RTOL, atol=1e-8, msg=lambda m: f"{name}: {m}")
    return err


@pytest.mark.parametrize("name", ["roughness", "metallic", "light_position", "light_intensity", "emissive"])
def test_factor_and_light_gradients_match_fd(scene, name):
    # Roughness and metallic are scalar factors, the light position and intensity and the emissive factor
    # 3-vectors: every component is checked.
    p = _params(scene)
    with torch.no_grad():
        lighting = _lighting(p)
    g = _grad(scene, p, (name,), lighting=lighting)
    fd = torch.tensor([_fd(scene, p, (name,), i, lighting=lighting) for i in range(g.numel())], dtype=DT)
    assert (g.abs() > 1e-2).all(), f"{name}: every component should move the image; grad {g.tolist()}"
    _check(g, fd, name)


def test_albedo_texel_gradients_match_fd(scene):
    p = _params(scene)
    with torch.no_grad():
        lighting = _lighting(p)
    g = _grad(scene, p, ("albedo",), lighting=lighting)
    # Which texels the bilinear filter can read at all: footprint of texel j is ((j - 1/2) / 8, (j + 3/2) / 8)
    # in u (likewise v), and uv stays in the disc |uv - (1/2, 1/2)| <= 1/4 (see the scene).
    lo = (torch.arange(TEX, dtype=DT) - 0.5) / TEX
    hi = lo + 2.0 / TEX
    gap = (torch.maximum(lo - 0.5, 0.5 - hi)).clamp_min(0)  # distance from 1/2 to each footprint, per axis
    reachable = (gap[:, None] ** 2 + gap[None, :] ** 2).sqrt() < 0.25
    assert not reachable[0].any() and not reachable[:, 0].any() and not reachable[1, 1]
    assert torch.equal(g[~reachable], torch.zeros_like(g[~reachable])), "unreachable texels got gradients"
    seen = (g.abs().sum(-1) > 0)[reachable]
    assert float(seen.double().mean()) > 0.8, "most reachable texels should be seen by some lit pixel"

    # Individual texels (row, column, channel): strongly seen, seen only by bilinear tails, and never seen
    # (border and inner corner): those must have zero gradient both ways, the loss not changing at all.
    picks = [(3, 3, 0), (2, 5, 1), (4, 4, 2), (5, 2, 0), (4, 1, 2), (0, 0, 0), (7, 3, 1), (3, 7, 2), (1, 1, 0)]
    flat = [(r * TEX + c) * 3 + ch for r, c, ch in picks]
    gp = torch.stack([g[r, c, ch] for r, c, ch in picks])
    fd = torch.tensor([_fd(scene, p, ("albedo",), i, lighting=lighting) for i in flat], dtype=DT)
    unseen = torch.tensor([not reachable[r, c] for r, c, _ in picks])
    assert (gp[unseen] == 0).all() and (fd[unseen] == 0).all(), (gp, fd)
    assert (gp[~unseen].abs() > 1e-3).all(), gp
    _check(gp, fd, "albedo texels")

    # All texels at once: the directional derivative along a random direction.
    direction = torch.randn(TEX, TEX, 3, generator=torch.Generator().manual_seed(2), dtype=DT)
    with torch.no_grad():
        up = _loss(scene, _with(p, ("albedo",), p["albedo"] + STEP * direction), lighting=lighting)
        down = _loss(scene, _with(p, ("albedo",), p["albedo"] - STEP * direction), lighting=lighting)
    _check((g * direction).sum(), (up - down) / (2 * STEP), "albedo, random direction")


@pytest.mark.parametrize("keys", [("env_prefiltered",), ("env_sh",), ("env_prefiltered", "env_sh")],
                         ids=["prefilter_ggx", "sh_project_equirect", "both"])
def test_environment_texel_gradients_match_fd(scene, keys):
    # Environment texels through the split-sum glossy term (prefilter_ggx -> envmap_lookup), through the SH
    # diffuse term (sh_project_equirect -> sh_irradiance) and through both from one shared map. Both paths
    # are linear in the texels, so the differences carry round-off only.
    p = _params(scene)
    if len(keys) > 1:
        p = _with(p, keys, p[keys[0]])
    g = _grad(scene, p, keys)
    if "env_sh" in keys:  # Y_00 > 0 everywhere: every texel reaches the irradiance of every pixel.
        assert (g.abs().sum(-1) > 0).all()
    flat = g.reshape(-1)
    picks = sorted(set(flat.abs().argsort(descending=True)[:2].tolist() + [5, 77, 200, 300]))
    fd = torch.tensor([_fd(scene, p, keys, i) for i in picks], dtype=DT)
    assert (flat[picks].abs() > 1e-3).all(), flat[picks]
    _check(flat[picks], fd, f"env texels {keys}")

    direction = torch.randn(g.shape, generator=torch.Generator().manual_seed(3), dtype=DT)
    with torch.no_grad():
        up = _loss(scene, _with(p, keys, p[keys[0]] + STEP * direction))
        down = _loss(scene, _with(p, keys, p[keys[0]] - STEP * direction))
    _check((g * direction).sum(), (up - down) / (2 * STEP), f"env {keys}, random direction")


@pytest.fixture(scope="module")
def silhouette(scene):
    """Parameters, fixed lighting and gradients w.r.t. the vertices with and without antialias, plus the
    vertices near the silhouette (|n . v| < 0.15) whose gradient antialias changes most, most first."""
    p = _params(scene)
    with torch.no_grad():
        lighting = _lighting(p)
    g_aa = _grad(scene, p, ("verts",), lighting=lighting)
    g_hard = _grad(scene, p, ("verts",), aa=False, lighting=lighting)
    to_eye = scene.eye - scene.verts
    cos_view = (scene.verts * to_eye).sum(-1) / to_eye.norm(dim=-1)  # unit sphere: normal = position
    visibility = (g_aa - g_hard).norm(dim=-1)
    visibility[cos_view.abs() >= 0.15] = -1
    idx = visibility.argsort(descending=True)[:3]
    assert (visibility[idx] > 0).all()
    return p, lighting, idx.tolist(), g_aa, g_hard


def test_silhouette_vertex_gradient_matches_fd_through_antialias(scene, silhouette):
    # The antialiased image is continuous in the vertices and, for a step far below a pixel, no pixel centre
    # changes face: central differences then measure the derivative of exactly what backward differentiates,
    # shading (positions, normals, uv, view and light directions) and edge positions together.
    p, lighting, idx, g_aa, g_hard = silhouette
    for i in idx:
        fd = torch.tensor([_fd(scene, p, ("verts",), 3 * i + k, step=1e-6, lighting=lighting) for k in range(3)],
                          dtype=DT)
        _check(g_aa[i], fd, f"vertex {i}")
        # A visibility gradient indeed: without antialias (shading only) the gradient is far off.
        assert float((g_hard[i] - fd).norm()) > 0.5 * float(fd.norm()), (i, g_hard[i], fd)


def _window(scene, vertex, margin=1):
    """Pixel box ``(y0, y1, x0, x1)`` outside which nothing depends on ``vertex``: the pixels under the faces
    around its one-ring (whose vertex normals it moves), widened by ``margin`` pixels for the FD step (a
    fifth of a pixel) and for antialias (which blends the two pixels whose centres straddle an edge)."""
    faces = scene.faces
    ring = faces[(faces == vertex).any(-1)].unique()
    near = faces[torch.isin(faces, ring).any(-1)].unique()
    uv, _ = scene.camera.project(scene.verts[near])
    lo = (uv.min(0).values.floor() - margin).clamp_min(0).long().tolist()
    hi = (uv.max(0).values.floor() + margin + 1).clamp_max(SIZE).long().tolist()
    return lo[1], hi[1], lo[0], hi[0]


def _supersampled_loss(scene, p, window, factor=8, **kw):
    """Loss over the pixels of ``window`` of a hard (no antialias) render at ``factor`` x the resolution,
    box-filtered back down: the pixel integral of the shaded image, which antialias approximates."""
    y0, y1, x0, x1 = window
    K = scene.camera.K.clone()
    K[0, 2] -= x0
    K[1, 2] -= y0
    K = torch.diag(torch.tensor([factor, factor, 1.0], dtype=DT)) @ K
    camera = lg.Camera(K=K, world_to_cam=scene.camera.world_to_cam, width=(x1 - x0) * factor,
                       height=(y1 - y0) * factor)
    image = _render(scene, p, aa=False, camera=camera, **kw)
    small = image.reshape(y1 - y0, factor, x1 - x0, factor, 3).mean((1, 3))
    return (scene.weights[y0:y1, x0:x1] * small).sum()


def test_silhouette_vertex_gradient_agrees_with_supersampled_render(scene, silhouette):
    # Step 0.02: about a fifth of a pixel at the silhouette (a pixel is ~0.09 units there), i.e. ~1.6 of the
    # 8 sub-samples. Tolerances (measured values for the three vertices in brackets):
    # * per-vertex cosine >= 0.98 [>= 0.9997]: the direction of the visibility gradient;
    # * per-vertex |grad| / |FD| in [0.5, 2] [0.91, 0.91, 1.14]: antialias blends along one axis with the
    #   colour of a pixel centre, which is the box integral only while an edge crosses a pixel's two far
    #   sides; near a silhouette vertex (edges 2-4 pixels long, ending inside pixels) it is off by tens of
    #   percent per vertex, as much for the plain coverage (a white image: 0.56 .. 1.24 over the 14 vertices
    #   with |n . v| < 0.15) as for the shaded image, whichever FD step (0.005 .. 0.04) or supersampling
    #   (8 to 32) is used;
    # * all vertices stacked: |grad| / |FD| within 20% [0.97].
    # The shading-only gradient (no antialias) fails all of it: it points away from the FD (cosine < 0).
    # The vertices are those where the visibility term is largest: where it is small, the shading term
    # dominates, and antialias shades a pixel at its centre; when that centre falls on a sliver face (seen
    # edge-on at the silhouette; 0.06 px^2 next to vertex 2 of this sphere) the point sample's derivative is
    # far from the pixel integral's (vertex 2: cosine -0.36, measured, with any step and supersampling).
    # Only a window around each vertex is supersampled (the rest of the loss does not depend on it).
    p, lighting, idx, g_aa, g_hard = silhouette
    fd = torch.zeros(len(idx), 3, dtype=DT)
    for r, i in enumerate(idx):
        y0, y1, x0, x1 = window = _window(scene, i)
        outside = scene.weights.clone()
        outside[y0:y1, x0:x1] = 0
        v = p["verts"].clone().requires_grad_(True)
        (g_out,) = torch.autograd.grad((outside * _render(scene, _with(p, ("verts",), v), lighting=lighting)).sum(),
                                       v)
        assert (g_out[i] == 0).all(), f"vertex {i} changes pixels outside its window {window}"
        for k in range(3):
            fd[r, k] = _fd(scene, p, ("verts",), 3 * i + k, step=0.02, lighting=lighting,
                           loss=lambda sc, q, **kw: _supersampled_loss(sc, q, window, **kw))
    ours, hard = g_aa[idx], g_hard[idx]
    cosines = [cosine(ours[r], fd[r]) for r in range(len(idx))]
    ratios = [float(ours[r].norm() / fd[r].norm()) for r in range(len(idx))]
    report = f"vertices {idx}: cosines {cosines}, ratios {ratios}; grad {ours.tolist()} vs FD {fd.tolist()}"
    if min(cosines) < 0.98:
        with torch.no_grad():
            save_failure_images("image_gradients_supersampled", antialiased=_render(scene, p, lighting=lighting),
                                hard=_render(scene, p, aa=False, lighting=lighting),
                                supersampled=_render(scene, p, aa=False, lighting=lighting, camera=lg.Camera(
                                    K=torch.diag(torch.tensor([8.0, 8.0, 1.0], dtype=DT)) @ scene.camera.K,
                                    world_to_cam=scene.camera.world_to_cam, width=8 * SIZE, height=8 * SIZE)))
    assert min(cosines) >= 0.98, report
    assert all(0.5 <= r <= 2.0 for r in ratios), report
    assert abs(float(ours.norm() / fd.norm()) - 1) < 0.2, report
    assert all(cosine(hard[r], fd[r]) < 0 for r in range(len(idx))), (hard, fd)
