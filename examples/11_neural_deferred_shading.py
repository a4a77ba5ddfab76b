"""Neural deferred shading: reconstruct the textured Spot cow with a mesh and an MLP shader, against analytic PBR.

Hybrid rendering after Worchel et al. 2022 ("Multi-View Mesh Reconstruction with Neural Deferred Shading"):
the mesh is rasterized into a G-buffer (position, normal, coverage; the raster integrator's antialiased AOVs),
a small MLP (:class:`lumigrad.integrators.NeuralShader`: frequency-encoded position, unit normal, SH-encoded view
direction) colours every covered pixel, and :func:`lumigrad.integrators.shade_gbuffer` composites the result
over the background by coverage, so silhouette gradients reach the vertices. Vertices (large steps:
:class:`lumigrad.optim.LargeSteps` with :class:`lumigrad.optim.AdamUniform`) and the shader (Adam) are
trained jointly on ``--views`` images; nothing about the lights or the material is known to it.

Targets: the textured Spot rendered by lumigrad's analytic PBR shading (raster integrator: the albedo texture,
roughness 0.45, an SH sky, a sun and a fill light, sRGB film) from ``--views`` cameras on a Fibonacci lattice;
``--held-out`` further cameras, between those, are never trained on. Both fits start from the same ellipsoid
(an icosphere, ``--level`` subdivisions, scaled to the true bounding box) and run ``--steps`` steps with the
same losses (L1 colour, squared coverage error, large-steps geometry with the same regularizers):

* ``neural``: vertices + the MLP shader;
* ``analytic``: vertices + a base-colour texture (``--texture`` texels high, twice as wide, on a spherical
  uv map of the start shape) under the *true* lights, roughness and film: the analytic model knows
  everything but the albedo and the shape.

Reported (printed, and written to ``--out`` with images of the held-out views and the meshes): PSNR on the
held-out views, PSNR on the training views, the shape error (symmetric surface distance in % of the true
bounding-box diagonal, :func:`lumigrad.fitting.metrics.shape_error_pct`) and the seconds each fit took.

    python examples/11_neural_deferred_shading.py --steps 400 --size 64 --views 16 --out neural-out
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Dict

import torch

import lumigrad as lg
from lumigrad.fitting.metrics import shape_error_pct
from lumigrad.geometry import icosphere
from lumigrad.integrators import RasterIntegrator
from lumigrad.losses import edge_length_loss, laplacian_smoothing, normal_consistency, psnr
from lumigrad.optim import AdamUniform, LargeSteps
from lumigrad.integrators import NeuralShader, shade_gbuffer
from lumigrad.shading import srgb_decode

ROUGHNESS = 0.45
BACKGROUND = 0.5      # display (sRGB-encoded) grey behind the object, in targets and fits alike
LAMBDA = 19.0         # large-steps smoothing strength
LR = {"verts": 2e-2, "shader": 3e-3, "texture": 3e-2}
WEIGHTS = {"colour": 1.0, "mask": 1.0, "laplacian": 0.1, "normal": 0.01, "edge": 0.1}


def rig(views: int, size: int, centre: torch.Tensor, phase: float = 0.0, radius: float = 3.0) -> lg.Camera:
    """``views`` cameras on a Fibonacci lattice (rotated by ``phase`` turns) around ``centre``, +y up."""
    k = torch.arange(views, dtype=torch.float64) + 0.5
    y = 1 - 2 * k / views
    phi = k * math.pi * (3 - math.sqrt(5)) + 2 * math.pi * phase
    d = torch.stack([torch.sqrt(1 - y * y) * torch.cos(phi), 0.8 * y, torch.sqrt(1 - y * y) * torch.sin(phi)], -1)
    eye = centre.double() + radius * d / d.norm(dim=-1, keepdim=True)
    return lg.Camera.look_at(eye.float(), centre.expand(views, 3).float(), torch.tensor([0.0, 1.0, 0.0]),
                             width=size, height=size, fov_y=0.7, near=0.5, far=radius + 3.0)


def lit_scene(verts, faces, texture, uv=None, uv_faces=None) -> lg.Scene:
    """The mesh with an sRGB albedo texture under the known lights, on an sRGB film (the targets' shading)."""
    scene = lg.Scene(film=lg.Film(encode="srgb"))
    material = lg.shading.Material(base_color_texture=texture, roughness_factor=ROUGHNESS, metallic_factor=0.0)
    scene.add_mesh("shape", lg.SceneMesh(verts, faces, material, uv=uv, uv_faces=uv_faces))
    sh = torch.zeros(9, 3)
    sh[0], sh[2] = torch.tensor([0.9, 0.95, 1.05]), 0.25
    scene.add_light("sky", lg.SHLight(sh))
    scene.add_light("sun", lg.DirectionalLight([-0.4, -1.0, -0.6], 1.6, [1.0, 0.94, 0.82]))
    scene.add_light("fill", lg.DirectionalLight([0.7, 0.2, 0.6], 0.4, [0.6, 0.75, 1.0]))
    return scene


def start_shape(true_verts: torch.Tensor, level: int):
    """An icosphere scaled to the true bounding box (an ellipsoid), and its unit-sphere directions."""
    unit, faces = icosphere(level)
    lo, hi = true_verts.min(0).values, true_verts.max(0).values
    return (lo + hi) / 2 + unit * (hi - lo) / 2, faces, unit


def spherical_uv(unit: torch.Tensor, faces: torch.Tensor):
    """Per-corner longitude / latitude uv of a unit-sphere mesh, unwrapped across the seam (the texture repeats
    in u) and with pole corners taking their face's longitude: ``(uv [3F, 2], uv_faces [F, 3])``."""
    d = unit[faces]  # [F, 3, 3]
    u = torch.atan2(d[..., 2], d[..., 0]) / (2 * math.pi) + 0.5
    v = torch.acos(d[..., 1].clamp(-1, 1)) / math.pi
    wraps = (u.max(-1).values - u.min(-1).values > 0.5)[:, None]
    u = torch.where(wraps & (u < 0.5), u + 1, u)
    pole = d[..., 1].abs() > 1 - 1e-6
    others = torch.where(pole, 0.0, u).sum(-1, keepdim=True) / (~pole).sum(-1, keepdim=True)
    u = torch.where(pole, others, u)
    return torch.stack([u, v], -1).reshape(-1, 2), torch.arange(3 * faces.shape[0]).reshape(-1, 3)


def loss_terms(image, mask, target, verts, faces) -> torch.Tensor:
    """L1 colour + squared coverage error + the large-steps regularizers (the same for both fits)."""
    loss = WEIGHTS["colour"] * (image - target[..., :3]).abs().mean()
    loss = loss + WEIGHTS["mask"] * ((mask - target[..., 3:]) ** 2).mean()
    return loss + (WEIGHTS["laplacian"] * laplacian_smoothing(verts, faces) + WEIGHTS["normal"]
                   * normal_consistency(verts, faces) + WEIGHTS["edge"] * edge_length_loss(verts, faces))


class NeuralFit:
    """Mesh + neural shader: ``render(verts, cams)`` gives ``(image, mask)`` in display (sRGB) values."""

    def __init__(self, verts, faces, aabb):
        self.geometry = LargeSteps(verts, faces, lambda_=LAMBDA)
        torch.manual_seed(0)
        self.shader = NeuralShader(aabb, output="srgb")
        self.optimizers = [AdamUniform([self.geometry.parameter], lr=LR["verts"]),
                           torch.optim.Adam(self.shader.parameters(), lr=LR["shader"])]

    def render(self, verts, cams):
        scene = lg.Scene()
        scene.add_mesh("shape", lg.SceneMesh(verts, self.geometry.faces))
        aovs = RasterIntegrator().render_aovs(scene, cams, ("position", "normal", "mask"))
        return shade_gbuffer(self.shader, aovs, cams, BACKGROUND), aovs["mask"]

    def after_step(self):
        pass


class AnalyticFit:
    """Mesh + base-colour texture under the true lights: ``render`` is the raster integrator's PBR shading."""

    def __init__(self, verts, faces, unit, texture_height):
        self.geometry = LargeSteps(verts, faces, lambda_=LAMBDA)
        self.uv, self.uv_faces = spherical_uv(unit, faces)
        self.texture = torch.full((texture_height, 2 * texture_height, 3), 0.5, requires_grad=True)
        self.optimizers = [AdamUniform([self.geometry.parameter], lr=LR["verts"]),
                           torch.optim.Adam([self.texture], lr=LR["texture"])]

    def render(self, verts, cams):
        scene = lit_scene(verts, self.geometry.faces, self.texture, self.uv, self.uv_faces)
        rgba = lg.render(scene, cams, background=float(srgb_decode(torch.tensor(BACKGROUND)))).rgba
        return rgba[..., :3], rgba[..., 3:]

    def after_step(self):
        with torch.no_grad():
            self.texture.clamp_(0, 1)


def fit(model, steps: int, cams, target) -> Dict:
    """``steps`` joint steps on the training views; returns the final vertices, losses and seconds."""
    t0 = time.perf_counter()
    losses = []
    for _ in range(steps):
        verts = model.geometry.verts()
        image, mask = model.render(verts, cams)
        loss = loss_terms(image, mask, target, verts, model.geometry.faces)
        for opt in model.optimizers:
            opt.zero_grad()
        loss.backward()
        for opt in model.optimizers:
            opt.step()
        model.after_step()
        losses.append(loss.item())
    return {"verts": model.geometry.verts().detach(), "losses": losses, "seconds": time.perf_counter() - t0}


def run(steps: int = 400, views: int = 16, held_out: int = 4, size: int = 64, level: int = 4,
        texture: int = 64, shape_points: int = 2000) -> Dict:
    """Render the targets, run both fits, measure them (see the module docstring)."""
    spot = lg.data.load_spot()
    true_verts, true_faces = spot.verts, spot.faces
    truth = lit_scene(true_verts, true_faces, spot.texture, spot.uv, spot.uv_faces)
    centre = (true_verts.min(0).values + true_verts.max(0).values) / 2
    train, test = rig(views, size, centre), rig(held_out, size, centre, phase=0.5 / max(held_out, 1))
    linear_background = float(srgb_decode(torch.tensor(BACKGROUND)))
    with torch.no_grad():
        target = lg.render(truth, train, background=linear_background).rgba
        target_test = lg.render(truth, test, background=linear_background).rgba
    verts, faces, unit = start_shape(true_verts, level)
    lo, hi = true_verts.min(0).values, true_verts.max(0).values
    aabb = torch.stack([lo - 0.25 * (hi - lo), hi + 0.25 * (hi - lo)])  # room for the shape to grow
    models = {"neural": NeuralFit(verts, faces, aabb), "analytic": AnalyticFit(verts, faces, unit, texture)}
    results = {}
    for name, model in models.items():
        out = fit(model, steps, train, target)
        with torch.no_grad():
            image_test, _ = model.render(out["verts"], test)
            image_train, _ = model.render(out["verts"], train)
        fitted = lg.Scene()
        fitted.add_mesh("shape", lg.SceneMesh(out["verts"], faces))
        out.update(psnr_held_out=float(psnr(image_test.clamp(0, 1), target_test[..., :3].clamp(0, 1))),
                   psnr_train=float(psnr(image_train.clamp(0, 1), target[..., :3].clamp(0, 1))),
                   shape_error_pct=shape_error_pct(fitted, truth, points=shape_points), images=image_test, faces=faces)
        results[name] = out
    start = lg.Scene()
    start.add_mesh("shape", lg.SceneMesh(verts, faces))
    return {"fits": results, "target_test": target_test,
            "start_shape_error_pct": shape_error_pct(start, truth, points=shape_points)}


def table(result: Dict, args) -> str:
    lines = [f"Spot, {args.views} training views + {args.held_out} held-out at {args.size} px, {args.steps} steps, "
             f"icosphere level {args.level}; start shape error {result['start_shape_error_pct']:.2f} %",
             "",
             "| shading  | PSNR held-out (dB) | PSNR train (dB) | shape error (% diag) | seconds |",
             "|----------|-------------------:|----------------:|---------------------:|--------:|"]
    for name, r in result["fits"].items():
        lines.append(f"| {name:<8} | {r['psnr_held_out']:18.2f} | {r['psnr_train']:15.2f} | "
                     f"{r['shape_error_pct']:20.2f} | {r['seconds']:7.1f} |")
    return "\n".join(lines)


def main(argv=None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--views", type=int, default=16, help="training views")
    parser.add_argument("--held-out", type=int, default=4, help="views never trained on, for PSNR")
    parser.add_argument("--size", type=int, default=64, help="image width and height in pixels")
    parser.add_argument("--level", type=int, default=4, help="icosphere subdivisions of the start (4: 2562 verts)")
    parser.add_argument("--texture", type=int, default=64, help="analytic fit's texture height (width twice it)")
    parser.add_argument("--shape-points", type=int, default=2000, help="surface samples of the shape error")
    parser.add_argument("--out", default=None, help="folder for the table, held-out images and meshes")
    args = parser.parse_args(argv)
    for name in ("steps", "views", "held_out", "size", "texture", "shape_points"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    result = run(args.steps, args.views, args.held_out, args.size, args.level, args.texture, args.shape_points)
    text = table(result, args)
    print(text)
    if args.out:
        from lumigrad.app.report import save_image_grid, save_loss_plot

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.md").write_text(text + "\n")
        fits = result["fits"]
        rows = [result["target_test"][..., :3]] + [fits[name]["images"] for name in fits]
        save_image_grid(out / "held_out.png", torch.cat(rows).clamp(0, 1), columns=args.held_out)
        for name, r in fits.items():
            save_loss_plot(out / f"loss_{name}.png", r["losses"])
            lg.io.write_obj(out / f"shape_{name}.obj", r["verts"], r["faces"])
        print(f"wrote {out}/results.md, held_out.png (rows: target, {', '.join(fits)}), loss_*.png, shape_*.obj")
    return {name: {k: r[k] for k in ("psnr_held_out", "psnr_train", "shape_error_pct", "seconds")}
            for name, r in result["fits"].items()}


if __name__ == "__main__":
    main()
