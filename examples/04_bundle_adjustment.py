"""Bundle adjustment by rendering: recover every view's pose, the shared intrinsics and the texture of Spot.

The scene is the embedded Spot cow, whose geometry is known. The targets are ``--views`` renders
(``--size`` pixels square) of the cow with its true texture (area-resampled to ``--texture-size`` texels, so
the model can match the targets exactly), from cameras on a ring around it
(:func:`lumigrad.app.demo.orbit_cameras`), all sharing one set of intrinsics ``fx, fy, cx, cy`` and the radial
coefficient ``k1`` (``--k1``) of an ``"opencv"`` lens, rendered per pixel through
:func:`lumigrad.render_through_lens`. ``--k1 0`` gives pinhole cameras, and then ``k1`` is not estimated.

The unknowns start perturbed (seeded by ``--seed``):

* every view's pose: the camera turned by ``INIT_ROTATION_DEG`` about a random axis through its centre and
  moved by ``INIT_TRANSLATION`` of its distance to the cow in a random direction;
* the shared intrinsics: ``fx`` and ``fy`` off by ``INIT_FOCAL`` (a random sign each), the principal point
  off by ``INIT_PRINCIPAL_PX`` pixels in a random direction, ``k1`` at 0;
* the appearance: a flat grey texture (bilinear lookups, as in :func:`lumigrad.app.demo.render_textured`).

**Gauge.** The geometry is known, in world units and in the world frame, so there is no gauge freedom: any
similarity transform of the cameras moves the images of the known mesh. (Bundle adjustment that also
estimates the structure is defined only up to a 7-DoF similarity and needs a gauge fix.) Two directions are
weak, as in any calibration from one rigid object: a focal change with every view dollying to keep the
cow's size ("dolly zoom"), and a principal-point shift with every view turning to keep the cow in place.
Only perspective separates them: with the parameterisation below, at 64 px, +1 px of principal point moves
the mesh's vertices by 0.05 px RMS and +1% of focal length by 0.03 px (changing ``K`` alone: 1.41 and 0.20 px).

**Parameterisation.** Each view is parameterised by what its image pins down directly: the pixel position
of the cow's centroid (an offset in pixels), its depth (a log ratio), and a rotation of the cow about its
centroid in the camera frame (axis-angle, on the left of the start rotation). The centroid's camera-frame
position is ``((u - cx) z / fx, (v - cy) z / fy, z)`` with ``z = z0 exp(d) sqrt(fx fy / (fx0 fy0))``, and
a principal-point shift ``(dcx, dcy)`` turns every camera by ``(dcy / fy, -dcx / fx, 0)``. The shared
intrinsics then move along the weak directions themselves, instead of dragging every view's image along,
and Adam's per-parameter steps walk them at full speed. Focal lengths are log-parameterised.

**Fit.** Adam on the mean squared error of the images, with a learning rate per parameter group and a cosine
decay. The first ``SILHOUETTE`` share of the steps fits the coverage channel alone (the grey texture would
bias the edges), the first ``WARMUP`` share on blurred images (wider basin); the texture starts after the
silhouette stage and the intrinsics a little later (``SCHEDULE``: start, then a linear ramp), once the poses
no longer move the images by pixels. A rare gradient spike from a triangle seen edge-on is clipped
(:func:`clip_spikes`).

At the end it prints a table (``main`` returns the dict): mean / max rotation error (degrees) and camera
position error (% of the camera-to-cow distance) over views, focal error (%, worst of ``fx``, ``fy``),
principal-point error (pixels), ``k1`` error, the reprojection error of the mesh vertices each true camera
sees (:meth:`lumigrad.Camera.project` with the recovered vs the true camera, lens included; RMS and max
pixels), the PSNR of the final renders against the targets and the texture PSNR over the texels the views
determine (:func:`lumigrad.app.demo.visible_texels`).

    python examples/04_bundle_adjustment.py --steps 200 --views 6 --size 96 --seed 0 --out ba-out
"""

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

import torch
import torch.nn.functional as F

import lumigrad as lg
from lumigrad.conventions import axis_angle_to_matrix, compose_world_to_cam, matrix_to_axis_angle
from lumigrad.app.demo import orbit_cameras, psnr, render_textured, visible_texels

INIT_ROTATION_DEG = 3.0          # each camera turned about a random axis through its centre
INIT_TRANSLATION = 0.03          # each camera moved by this fraction of its distance to the cow
INIT_FOCAL = 0.06                # fx, fy scaled by 1 +- this
INIT_PRINCIPAL_PX = 3.0          # principal point moved by this many pixels (at 96 px; scales with --size)
RADIUS = 2.5                     # camera distance to the ring's centre (world units; the cow is ~1.7 long)
SILHOUETTE = 0.2                 # share of the steps fitting coverage alone
WARMUP = 0.1                     # share of the steps on blurred images
BLUR_PX = 1.5                    # Gaussian sigma of the warm-up blur, in pixels at 96 px
# Adam learning rates (step sizes) at the start of the cosine decay; "_px" ones are pixels at 96 px.
LR = {"rotation": 0.004, "centroid_px": 0.4, "log_depth": 0.003, "log_focal": 0.015, "principal_px": 0.8,
      "k1": 0.015, "texture": 0.06}
# (start, ramp) as shares of the steps: a group's learning rate is 0 before start, then ramps up linearly.
SCHEDULE = {"texture": (0.2, 0.1), "log_focal": (0.25, 0.05), "principal_px": (0.25, 0.05), "k1": (0.25, 0.05)}
SPIKE_FACTOR = 10.0              # a gradient norm above this many times its running norm is clipped to it
TRACKED = ("reprojection_rms_px", "rotation_error_deg_mean", "translation_error_pct_mean", "focal_error_pct",
           "principal_point_error_px")


@dataclass
class Scene:
    """The known parts (mesh, true cameras and texture, targets) of one bundle-adjustment problem."""

    mesh: lg.Mesh
    true_cameras: lg.Camera
    true_texture: torch.Tensor
    target: torch.Tensor
    centroid: torch.Tensor


def resize_texture(tex: torch.Tensor, size: int) -> torch.Tensor:
    """Area-resample ``tex [H, W, C]`` to ``[size, size, C]``."""
    x = F.interpolate(tex.permute(2, 0, 1)[None], size=(size, size), mode="area")
    return x[0].permute(1, 2, 0).contiguous()


def render(mesh: lg.Mesh, tex: torch.Tensor, camera: lg.Camera) -> torch.Tensor:
    """Render ``[N, H, W, 4]`` RGB + coverage of the textured mesh (bilinear texels) through the lens."""
    return lg.render_through_lens(lambda cam: render_textured(mesh, mesh.verts, tex, cam, filter="bilinear"),
                                  camera)


def blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur ``[N, H, W, C]`` images with a separable Gaussian of ``sigma`` pixels (zero padding)."""
    r = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-r, r + 1, dtype=image.dtype)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    n, h, w, c = image.shape
    img = image.permute(0, 3, 1, 2).reshape(n * c, 1, h, w)
    img = F.conv2d(img, k.view(1, 1, -1, 1), padding=(r, 0))
    img = F.conv2d(img, k.view(1, 1, 1, -1), padding=(0, r))
    return img.reshape(n, c, h, w).permute(0, 2, 3, 1)


def make_scene(views: int, size: int, texture_size: int, k1: float) -> Scene:
    """The true cameras (a ring, shared intrinsics and lens), the true texture and the target renders."""
    mesh = lg.data.load_spot()
    ring = orbit_cameras(views, size, radius=RADIUS)
    distortion = torch.tensor([k1, 0.0, 0.0, 0.0, 0.0]) if k1 else None
    cams = lg.Camera(ring.K, ring.world_to_cam, size, size, distortion=distortion)
    tex = resize_texture(mesh.texture[..., :3], texture_size)
    with torch.no_grad():
        target = render(mesh, tex, cams)
    return Scene(mesh, cams, tex, target, mesh.verts.mean(0))


def perturb(cams: lg.Camera, centroid: torch.Tensor, gen: torch.Generator) -> lg.Camera:
    """The fit's start: every pose and the shared intrinsics off by the ``INIT_*`` amounts (pinhole)."""
    K, w2c = cams.K.clone(), cams.world_to_cam
    n = w2c.shape[0]
    axis = F.normalize(torch.randn(n, 3, generator=gen), dim=-1)
    R = axis_angle_to_matrix(axis * math.radians(INIT_ROTATION_DEG)) @ w2c[:, :3, :3]
    centre = camera_centres(w2c)
    distance = (centre - centroid).norm(dim=-1, keepdim=True)
    centre = centre + F.normalize(torch.randn(n, 3, generator=gen), dim=-1) * INIT_TRANSLATION * distance
    signs = torch.randint(0, 2, (2,), generator=gen) * 2 - 1
    K[0, 0] *= 1 + INIT_FOCAL * signs[0]
    K[1, 1] *= 1 + INIT_FOCAL * signs[1]
    angle = torch.rand((), generator=gen) * 2 * math.pi
    shift = INIT_PRINCIPAL_PX * cams.width / 96
    K[0, 2] += shift * torch.cos(angle)
    K[1, 2] += shift * torch.sin(angle)
    return lg.Camera(K, compose_world_to_cam(R, -(R @ centre[..., None])[..., 0]), cams.width, cams.height)


class Rig:
    """The unknowns as optimisation parameters (``params``, by group name), all zero at the start but the texture.

    Per view ``[N, ...]``: ``rotation`` (axis-angle of the cow about its centroid, camera frame),
    ``centroid_px`` (the centroid's pixel offset), ``log_depth``. Shared: ``log_focal [2]``,
    ``principal_px [2]``, ``k1 [1]`` (if ``use_k1``), ``texture [T, T, 3]``. See the module docstring.
    """

    def __init__(self, start: lg.Camera, centroid: torch.Tensor, texture: torch.Tensor, use_k1: bool):
        K0, w2c0 = start.K.detach(), start.world_to_cam.detach()
        n = w2c0.shape[0]
        self.centroid = centroid
        self.f0 = K0.diagonal()[:2].clone()
        self.c0 = K0[:2, 2].clone()
        self.R0 = w2c0[:, :3, :3]
        p0 = self.R0 @ centroid + w2c0[:, :3, 3]  # [N, 3] camera-frame centroid at the start
        self.z0 = p0[:, 2]
        self.uv0 = p0[:, :2] / p0[:, 2:] * self.f0 + self.c0
        self.width, self.height = start.width, start.height
        self.params = {"rotation": torch.zeros(n, 3), "centroid_px": torch.zeros(n, 2), "log_depth": torch.zeros(n),
                       "log_focal": torch.zeros(2), "principal_px": torch.zeros(2), "texture": texture.clone()}
        if use_k1:
            self.params["k1"] = torch.zeros(1)
        for p in self.params.values():
            p.requires_grad_(True)

    def cameras(self) -> lg.Camera:
        """The current cameras ``[N]``: shared ``K`` (and lens), per-view ``world_to_cam``; differentiable."""
        p = self.params
        f = self.f0 * torch.exp(p["log_focal"])
        c = self.c0 + p["principal_px"]
        zero, one = torch.zeros(()), torch.ones(())
        K = torch.stack([f[0], zero, c[0], zero, f[1], c[1], zero, zero, one]).reshape(3, 3)
        z = self.z0 * torch.exp(p["log_depth"] + p["log_focal"].mean())  # dolly with the zoom
        xy = (self.uv0 + p["centroid_px"] - c) / f * z[:, None]
        centre = torch.cat([xy, z[:, None]], -1)  # [N, 3] camera-frame centroid
        dc = p["principal_px"] / f  # the turn that keeps the cow in place when the principal point moves
        turn = axis_angle_to_matrix(torch.stack([dc[1], -dc[0], zero]))
        R = turn @ axis_angle_to_matrix(p["rotation"]) @ self.R0
        w2c = compose_world_to_cam(R, centre - R @ self.centroid)
        distortion = torch.cat([p["k1"], torch.zeros(4)]) if "k1" in p else None
        return lg.Camera(K, w2c, self.width, self.height, distortion=distortion)


def camera_centres(world_to_cam: torch.Tensor) -> torch.Tensor:
    """World positions ``[N, 3]`` of the cameras ``world_to_cam [N, 4, 4]``: ``-R^T t``."""
    return -(world_to_cam[:, :3, :3].transpose(-1, -2) @ world_to_cam[:, :3, 3:])[..., 0]


def visible_vertices(mesh: lg.Mesh, cams: lg.Camera) -> torch.Tensor:
    """``[N, V]`` bool: the vertices of the faces each camera sees (without its lens) in at least one pixel."""
    pinhole = lg.Camera(cams.K, cams.world_to_cam, cams.width, cams.height)
    with torch.no_grad():
        face_ids = lg.rasterize(mesh.verts, mesh.faces, pinhole).face_ids
    seen = torch.zeros(face_ids.shape[0], mesh.verts.shape[0], dtype=torch.bool)
    for i in range(face_ids.shape[0]):
        faces = face_ids[i][face_ids[i] >= 0].unique().long()
        seen[i, mesh.faces[faces].reshape(-1)] = True
    return seen


def camera_errors(cams: lg.Camera, true: lg.Camera, centroid: torch.Tensor, k1_true: float) -> Dict[str, float]:
    """Pose errors over views (mean and max) and shared-intrinsics errors of ``cams`` against the truth."""
    with torch.no_grad():
        w2c, w2c_true = cams.world_to_cam.double(), true.world_to_cam.double()
        relative = w2c_true[:, :3, :3].transpose(-1, -2) @ w2c[:, :3, :3]
        rot = torch.rad2deg(matrix_to_axis_angle(relative).norm(dim=-1))
        distance = (camera_centres(w2c_true) - centroid.double()).norm(dim=-1)
        trans = 100 * (camera_centres(w2c) - camera_centres(w2c_true)).norm(dim=-1) / distance
        K, K_true = cams.K.double(), true.K.double()
        focal = 100 * (K.diagonal()[:2] / K_true.diagonal()[:2] - 1).abs()
        principal = (K[:2, 2] - K_true[:2, 2]).norm()
        k1 = float(cams.distortion[0]) if cams.distortion is not None else 0.0
    return {"rotation_error_deg_mean": float(rot.mean()), "rotation_error_deg_max": float(rot.max()),
            "translation_error_pct_mean": float(trans.mean()), "translation_error_pct_max": float(trans.max()),
            "focal_error_pct": float(focal.max()), "principal_point_error_px": float(principal),
            "k1_error": abs(k1 - k1_true)}


def reprojection_errors(verts: torch.Tensor, cams: lg.Camera, true: lg.Camera,
                        seen: torch.Tensor) -> Dict[str, float]:
    """RMS and max pixel distance between the ``seen [N, V]`` vertices projected by ``cams`` and by ``true``."""
    with torch.no_grad():
        d = (cams.project(verts)[0] - true.project(verts)[0]).norm(dim=-1)[seen]
    return {"reprojection_rms_px": float(d.square().mean().sqrt()), "reprojection_max_px": float(d.max())}


def clip_spikes(opt: torch.optim.Optimizer, running: Dict[str, float], factor: float = SPIKE_FACTOR,
                decay: float = 0.9) -> None:
    """Scale each group's gradient down, in place, where its norm jumps above ``factor`` times its running norm.

    A triangle seen edge-on can cover a pixel centre; its barycentrics' derivatives grow like one over its
    (near-zero) screen area, so now and then one pixel sends a gradient a thousand times the usual. One such
    step would throw Adam's moments far off (its first moment keeps pushing for tens of steps); clipped to
    the running scale, the step keeps its direction and does no harm.
    """
    for g in opt.param_groups:
        grad = g["params"][0].grad
        if grad is None:
            continue
        norm = float(grad.norm())
        cap = factor * running[g["name"]] if g["name"] in running else math.inf
        if norm > cap:
            grad.mul_(cap / norm)
            norm = cap
        if norm > 0:
            running[g["name"]] = decay * running.get(g["name"], norm) + (1 - decay) * norm


@dataclass
class Result:
    """What :func:`bundle_adjust` returns: metrics, the problem, images ``[N, H, W, 4]`` and curves."""

    metrics: Dict[str, float]
    scene: Scene
    initial: torch.Tensor
    final: torch.Tensor
    texture: torch.Tensor
    losses: List[float]
    history: Dict[str, List[float]]


def bundle_adjust(*, steps: int = 200, views: int = 6, size: int = 96, texture_size: int = 64, k1: float = -0.1,
                  seed: int = 0, track: bool = False) -> Result:
    """Make the problem, fit poses, intrinsics and texture from the perturbed start, and measure the errors.

    ``track`` records the camera errors of every step in ``Result.history`` (about a third more time).
    """
    gen = torch.Generator().manual_seed(seed)
    scene = make_scene(views, size, texture_size, k1)
    start = perturb(scene.true_cameras, scene.centroid, gen)
    rig = Rig(start, scene.centroid, torch.full_like(scene.true_texture, 0.5), use_k1=bool(k1))
    px = size / 96
    opt = torch.optim.Adam([{"params": [value], "name": name, "base_lr": LR[name] * (px if "_px" in name else 1)}
                            for name, value in rig.params.items()], lr=0.0, betas=(0.9, 0.99))
    seen = visible_vertices(scene.mesh, scene.true_cameras)
    with torch.no_grad():
        initial = render(scene.mesh, rig.params["texture"], rig.cameras())

    losses: List[float] = []
    history: Dict[str, List[float]] = {key: [] for key in TRACKED}
    running: Dict[str, float] = {}
    sigma = BLUR_PX * px
    target_blurred = blur(scene.target, sigma)
    for step in range(steps):
        cosine = 0.5 * (1 + math.cos(math.pi * step / steps))
        for g in opt.param_groups:
            begin, ramp = SCHEDULE.get(g["name"], (0.0, 0.0))
            g["lr"] = g["base_lr"] * cosine * min(1.0, max(0.0, ((step + 1) / steps - begin) / max(ramp, 1e-9)))
        opt.zero_grad(set_to_none=True)
        cams = rig.cameras()
        image, target = render(scene.mesh, rig.params["texture"], cams), scene.target
        if step < WARMUP * steps:
            image, target = blur(image, sigma), target_blurred
        if step < SILHOUETTE * steps:
            image, target = image[..., 3:], target[..., 3:]
        loss = (image - target).square().mean()
        loss.backward()
        clip_spikes(opt, running)
        opt.step()
        with torch.no_grad():
            rig.params["texture"].clamp_(0, 1)
        losses.append(float(loss.detach()))
        if track:
            errors = camera_errors(cams, scene.true_cameras, scene.centroid, k1)
            errors.update(reprojection_errors(scene.mesh.verts, cams, scene.true_cameras, seen))
            for key in history:
                history[key].append(errors[key])

    cams = rig.cameras()
    tex = rig.params["texture"].detach()
    with torch.no_grad():
        final = render(scene.mesh, tex, cams)
    metrics = camera_errors(cams, scene.true_cameras, scene.centroid, k1)
    metrics.update(reprojection_errors(scene.mesh.verts, cams, scene.true_cameras, seen))
    metrics["initial_reprojection_rms_px"] = reprojection_errors(scene.mesh.verts, start, scene.true_cameras,
                                                                 seen)["reprojection_rms_px"]
    metrics["image_psnr_db"] = psnr(final[..., :3], scene.target[..., :3])
    pinhole = lg.Camera(scene.true_cameras.K, scene.true_cameras.world_to_cam, size, size)
    texels = visible_texels(scene.mesh, scene.mesh.verts, tex, pinhole)
    metrics["texture_psnr_db"] = psnr(tex, scene.true_texture, texels[..., None])
    metrics["visible_texel_fraction"] = float(texels.float().mean())
    metrics["final_loss"] = losses[-1] if losses else float("nan")
    return Result(metrics, scene, initial, final, tex, losses, history)


ROWS = [("rotation error, mean / max over views (deg)", "rotation_error_deg_mean", "rotation_error_deg_max"),
        ("camera position error, mean / max (% of distance)", "translation_error_pct_mean",
         "translation_error_pct_max"),
        ("focal error, worst of fx, fy (%)", "focal_error_pct", None),
        ("principal point error (px)", "principal_point_error_px", None),
        ("k1 error", "k1_error", None),
        ("reprojection error, RMS / max (px)", "reprojection_rms_px", "reprojection_max_px"),
        ("reprojection RMS at the start (px)", "initial_reprojection_rms_px", None),
        ("render PSNR vs targets (dB)", "image_psnr_db", None),
        ("texture PSNR on visible texels (dB)", "texture_psnr_db", None),
        ("visible texel fraction", "visible_texel_fraction", None)]


def main(argv=None) -> Dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--views", type=int, default=6)
    parser.add_argument("--size", type=int, default=96, help="image width and height in pixels")
    parser.add_argument("--texture-size", type=int, default=64)
    parser.add_argument("--k1", type=float, default=-0.1, help="true radial distortion; 0: pinhole, not fitted")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="folder for target / initial / final images and a loss plot")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    result = bundle_adjust(steps=args.steps, views=args.views, size=args.size, texture_size=args.texture_size,
                           k1=args.k1, seed=args.seed, track=args.out is not None)
    metrics = result.metrics
    metrics["seconds"] = time.perf_counter() - t0

    print(f"bundle adjustment of {args.views} views at {args.size} px (k1 = {args.k1:g}), {args.steps} steps, "
          f"{metrics['seconds']:.1f} s")
    for label, a, b in ROWS:
        value = f"{metrics[a]:.4g}" + ("" if b is None else f" / {metrics[b]:.4g}")
        print(f"  {label:<52s} {value}")

    if args.out:
        from lumigrad.app.report import save_image_grid, save_loss_plot

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        images = torch.cat([result.scene.target, result.initial, result.final])[..., :3]
        save_image_grid(out / "views.png", images, columns=args.views)
        lg.io.write_image(out / "texture.png", torch.cat([result.scene.true_texture, result.texture], 1))
        save_loss_plot(out / "loss.png", result.losses, result.history)
        print(f"wrote {out}/views.png (rows: target, initial, final), texture.png (true | recovered), loss.png")
    return metrics


if __name__ == "__main__":
    main()
