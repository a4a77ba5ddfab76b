"""Shape from images: reconstruct the Spot cow from a sphere with silhouette and shading losses.

Targets are ``--views`` renders (``--size`` pixels) of the Spot cow (``../shared/data/spot-cow``, or the
embedded copy) under known lights with a known grey material, from cameras spread over a sphere (a Fibonacci
lattice). The fit starts from an icosphere (``--level``, default 3: 642 vertices) at the centre of the rig and
moves its vertices by gradient descent; half-way it is subdivided once (1-to-4, 2562 vertices) so that it
can gain detail. The renderer is one of:

* ``soft``: :func:`lumigrad.soft_rasterize` silhouettes (IoU loss) and soft-aggregated per-vertex (Gouraud)
  shading, with ``sigma`` / ``gamma`` annealed from blurred to sharp (:class:`SoftRasterSchedule`);
* ``hard``: :func:`lumigrad.render` (hard rasterizer, per-pixel shading, antialiased silhouettes), RGB and
  coverage against the targets;
* ``both``: the hard shaded render, plus the soft silhouette loss for reach while the shape is coarse (its
  weight fades to 0 over the first half of the fit).

Geometry is either parameterised with large steps (Nicolet et al. 2021: ``u = (I + lambda L) v``, with
:class:`lumigrad.optim.AdamUniform`) or moved directly with Adam; ``--regularize`` adds Laplacian smoothing,
normal consistency and edge-length terms (``ADAM_REGULARIZER_SCALE`` times stronger without large steps),
``--no-regularize`` drops them (to show the crumpling and self-intersections that follow).

Reported: the symmetric chamfer distance between the surfaces (10k area-uniform samples on each, exact
point-to-triangle distance to the other surface, the two directed means averaged) as a percentage of the
true bounding-box diagonal; the mean angle between the recovered surface's normal and the normal of the
nearest true face at the same samples; and the share of folded edges (adjacent faces whose normals point
more than 90 degrees apart: a crumpled or self-intersecting surface).

    python examples/06_shape_from_images.py --renderer both --steps 400 --views 20 --size 96 --out shape-out
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Dict, Optional

import torch

import lumigrad as lg
from lumigrad.geometry import icosphere, subdivide_midpoint
from lumigrad.geometry.distance import closest_point_on_triangle, sample_points_on_mesh
from lumigrad.losses import (edge_length_loss, laplacian_smoothing, normal_consistency, silhouette_iou_loss)
from lumigrad.optim import AdamUniform, LargeSteps, SoftRasterSchedule
from lumigrad.raster.topology import edge_adjacency
from lumigrad.optim.progress import LossProgress

SPOT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "spot-cow" / "spot_triangulated.obj"
ALBEDO = 0.8
LAMBDA = 19.0                 # large-steps smoothing strength
LR = {"large_steps": 3e-2, "adam": 5e-3}
WEIGHTS = {"silhouette": 1.0, "image": 1.0, "laplacian": 0.1, "normal": 0.01, "edge": 0.1}
# Plain Adam moves every vertex on its own: it needs stronger smoothing to stay a surface.
ADAM_REGULARIZER_SCALE = 20.0


def load_spot():
    if SPOT.exists():
        verts, faces, _, _ = lg.io.read_obj(SPOT)
        return verts, faces
    spot = lg.data.load_spot()
    return spot.verts, spot.faces


def rig(views: int, size: int, centre: torch.Tensor, radius: float = 3.0) -> lg.Camera:
    """``views`` cameras on a Fibonacci lattice over the sphere around ``centre``, looking at it, +y up."""
    k = torch.arange(views, dtype=torch.float64) + 0.5
    y = 1 - 2 * k / views
    phi = k * math.pi * (3 - math.sqrt(5))
    d = torch.stack([torch.sqrt(1 - y * y) * torch.cos(phi), 0.8 * y, torch.sqrt(1 - y * y) * torch.sin(phi)], -1)
    eye = centre.double() + radius * d / d.norm(dim=-1, keepdim=True)
    return lg.Camera.look_at(eye.float(), centre.expand(views, 3).float(), torch.tensor([0.0, 1.0, 0.0]),
                             width=size, height=size, fov_y=0.7, near=0.5, far=radius + 3.0)


def lit_scene(verts: torch.Tensor, faces: torch.Tensor) -> lg.Scene:
    """The mesh in grey under an SH sky and a sun: the shading that the targets and the hard path use."""
    scene = lg.Scene()
    scene.add_mesh("shape", lg.SceneMesh(verts, faces, lg.shading.Material(
        base_color_factor=[ALBEDO, ALBEDO, ALBEDO, 1.0], metallic_factor=0.0, roughness_factor=0.9)))
    sh = torch.zeros(9, 3)
    sh[0], sh[2] = 1.35, 0.3
    scene.add_light("sky", lg.SHLight(sh))
    scene.add_light("sun", lg.DirectionalLight([-0.3, -1.0, -0.5], 2.0))
    return scene


def vertex_shading(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Per-vertex Lambertian colours under the scene's lights (for soft Gouraud shading)."""
    n = lg.vertex_normals(verts, faces)
    sun = torch.nn.functional.normalize(torch.tensor([0.3, 1.0, 0.5]), dim=0)
    sh = torch.zeros(9, 3)
    sh[0], sh[2] = 1.35, 0.3
    irradiance = lg.shading.sh_irradiance(n, sh) + 2.0 * (n @ sun).clamp_min(0)[:, None]
    return ALBEDO / math.pi * 0.96 * irradiance


def surface_metrics(verts, faces, true_verts, true_faces, samples: int = 10000) -> Dict[str, float]:
    """Chamfer (% of the true bounding-box diagonal), normal angle (deg) and folded-edge share (%)."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        diag = float((true_verts.max(0).values - true_verts.min(0).values).norm())
        p, pn = _samples_with_normals(verts, faces, samples, g)
        q, qn = _samples_with_normals(true_verts, true_faces, samples, g)
        to_true, true_normal = _surface_distance(p, true_verts, true_faces)
        to_fit, _ = _surface_distance(q, verts, faces)
        chamfer = 0.5 * float(to_true.mean() + to_fit.mean())
        angle = float(torch.rad2deg(torch.acos((pn * true_normal).sum(-1).clamp(-1, 1))).mean())
        fn = _face_normals(verts, faces)
        adjacency = edge_adjacency(faces, verts.shape[0]).long()
        inner = adjacency >= 0
        dots = (fn[:, None, :] * fn[adjacency.clamp_min(0)]).sum(-1)
        folded = float((dots[inner] < 0).float().mean())
    return {"chamfer_pct": 100 * chamfer / diag, "normal_angle_deg": angle, "folded_edges_pct": 100 * folded}


def _face_normals(verts, faces):
    a, b, c = verts[faces].unbind(1)
    return torch.nn.functional.normalize(torch.linalg.cross(b - a, c - a), dim=-1)


def _samples_with_normals(verts, faces, num, generator):
    points, face_index, _ = sample_points_on_mesh(verts, faces, num, generator=generator, return_barycentrics=True)
    return points, _face_normals(verts, faces)[face_index]


def _surface_distance(points, verts, faces, candidates: int = 24):
    """Distance from each point to a mesh and the normal of the nearest face: exact point-triangle distances
    to the ``candidates`` faces whose centroids are nearest (the true nearest face is among them unless the
    mesh's triangles are far larger than its distance to the point)."""
    centroids = verts[faces].mean(1)
    near = torch.cat([torch.cdist(chunk, centroids).topk(candidates, largest=False).indices
                      for chunk in points.split(4096)])  # [P, k]
    tri = verts[faces[near]]  # [P, k, 3, 3]
    closest, _ = closest_point_on_triangle(points[:, None, :], tri[..., 0, :], tri[..., 1, :], tri[..., 2, :])
    dist = (closest - points[:, None, :]).norm(dim=-1)
    best = dist.argmin(1)
    face = near.gather(1, best[:, None])[:, 0]
    return dist.gather(1, best[:, None])[:, 0], _face_normals(verts, faces)[face]


def reconstruct(renderer: str = "both", large_steps: bool = True, regularize: bool = True, steps: int = 400,
                views: int = 20, size: int = 96, level: int = 3, progress: bool = False,
                track: bool = False) -> Dict:
    """Fit an icosphere to the targets; returns metrics, losses and images (see the module docstring)."""
    if renderer not in ("soft", "hard", "both"):
        raise ValueError(f"renderer must be 'soft', 'hard' or 'both'; got {renderer!r}")
    true_verts, true_faces = load_spot()
    centre = (true_verts.min(0).values + true_verts.max(0).values) / 2
    cams = rig(views, size, centre)
    with torch.no_grad():
        target = lg.render(lit_scene(true_verts, true_faces), cams, background=0.0).rgba

    verts, faces = icosphere(level, radius=0.6)
    verts = verts + centre
    # Alone, the soft renderer needs a wide early blur and many candidates per pixel (its shading too);
    # beside the hard one it only gives the early silhouette pull, which a cheaper setting serves.
    sigma_start, candidates = (size / 6.0, 16) if renderer == "soft" else (4.0, 8)
    schedule = SoftRasterSchedule(sigma_start=sigma_start, sigma_end=0.5)
    subdivide_at = steps // 2 if steps >= 4 else None
    state = _Geometry(verts, faces, large_steps)
    losses = []
    with LossProgress(steps, f"shape ({renderer})", enabled=progress) as bar:
        for step in range(steps):
            if step == subdivide_at:
                with torch.no_grad():
                    v, f = subdivide_midpoint(state.verts().detach(), state.faces)
                state = _Geometry(v, f, large_steps)
            loss = _loss(renderer, state.verts(), state.faces, large_steps, regularize, cams, target,
                         schedule(step, steps), candidates, fade=max(0.0, 1.0 - step / max(1, steps // 2)))
            state.step(loss)
            losses.append(loss.item())
            bar.update(losses[-1])
    final_verts = state.verts().detach()
    metrics = surface_metrics(final_verts, state.faces, true_verts, true_faces)
    metrics["final_loss"] = losses[-1] if losses else float("nan")
    result = {"metrics": metrics, "losses": losses, "verts": final_verts, "faces": state.faces}
    if track:
        with torch.no_grad():
            result["images"] = (target, lg.render(lit_scene(final_verts, state.faces), cams, background=0.0).rgba)
    return result


def _loss(renderer, v, f, large_steps, regularize, cams, target, sigma_gamma, candidates, fade) -> torch.Tensor:
    """One step's loss: image terms of the chosen renderer plus the regularizers."""
    loss = v.new_zeros(())
    fade = 1.0 if renderer == "soft" else fade
    if renderer in ("soft", "both") and fade > 0:
        sigma, gamma = sigma_gamma
        colour = vertex_shading(v, f) if renderer == "soft" else None
        soft = lg.soft_rasterize(v, f, cams, attrs=colour, sigma=sigma, gamma=gamma, faces_per_pixel=candidates)
        # With the hard render beside it, the soft silhouette only pulls from afar: its weight fades out over
        # the first half, before the sharp renderer takes over the detail.
        loss = loss + fade * WEIGHTS["silhouette"] * silhouette_iou_loss(soft.silhouette, target[..., 3])
        if renderer == "soft":
            loss = loss + WEIGHTS["image"] * ((soft.attrs - target[..., :3]) ** 2).mean()
    if renderer in ("hard", "both"):
        image = lg.render(lit_scene(v, f), cams, background=0.0).rgba
        loss = loss + WEIGHTS["image"] * ((image - target) ** 2).mean() * 10
    if regularize:
        scale = 1.0 if large_steps else ADAM_REGULARIZER_SCALE
        loss = loss + scale * (WEIGHTS["laplacian"] * laplacian_smoothing(v, f)
                               + WEIGHTS["normal"] * normal_consistency(v, f) + WEIGHTS["edge"] * edge_length_loss(v, f))
    return loss


class _Geometry:
    """The vertices being fitted: large-steps ``u`` with AdamUniform, or ``v`` itself with Adam."""

    def __init__(self, verts: torch.Tensor, faces: torch.Tensor, large_steps: bool):
        self.faces = faces
        if large_steps:
            self.param = LargeSteps(verts, faces, lambda_=LAMBDA)
            self.opt = AdamUniform([self.param.parameter], lr=LR["large_steps"])
        else:
            self.param = verts.clone().requires_grad_(True)
            self.opt = torch.optim.Adam([self.param], lr=LR["adam"])
        self.large_steps = large_steps

    def verts(self) -> torch.Tensor:
        return self.param.verts() if self.large_steps else self.param

    def step(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()


def main(argv=None) -> Dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renderer", choices=("soft", "hard", "both"), default="both")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--views", type=int, default=20)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--level", type=int, default=3, help="icosphere subdivisions of the start (3: 642 verts)")
    parser.add_argument("--no-large-steps", action="store_true", help="plain Adam on the vertices")
    parser.add_argument("--no-regularize", action="store_true", help="drop the smoothness regularizers")
    parser.add_argument("--out", default=None, help="folder for target / final images, the mesh and a loss plot")
    parser.add_argument("--progress", action="store_true", help="show a progress bar")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    result = reconstruct(args.renderer, not args.no_large_steps, not args.no_regularize, args.steps, args.views,
                         args.size, args.level, progress=args.progress, track=args.out is not None)
    m = result["metrics"]
    m["seconds"] = time.perf_counter() - t0
    print(f"shape from {args.views} views at {args.size} px, renderer {args.renderer}, "
          f"{'large steps' if not args.no_large_steps else 'Adam on vertices'}, "
          f"{'regularized' if not args.no_regularize else 'no regularizers'}: {args.steps} steps, {m['seconds']:.1f} s")
    print(f"  chamfer distance     {m['chamfer_pct']:.3f} % of the bounding-box diagonal")
    print(f"  normal angle         {m['normal_angle_deg']:.2f} deg (mean, nearest samples)")
    print(f"  folded edges         {m['folded_edges_pct']:.2f} %")
    if args.out:
        from lumigrad.app.report import save_image_grid, save_loss_plot

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        target, final = result["images"]
        save_image_grid(out / "views.png", torch.cat([target, final])[..., :3].clamp(0, 1), columns=args.views)
        save_loss_plot(out / "loss.png", result["losses"])
        lg.io.write_obj(out / "shape.obj", result["verts"], result["faces"])
        print(f"wrote {out}/views.png (rows: target, recovered), shape.obj, loss.png")
    return m


if __name__ == "__main__":
    main()
