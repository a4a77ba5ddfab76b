"""A deforming textured mesh seen by a moving camera: fit the deformation and the camera path from the frames.

The "avatar" is the Spot cow. Its true motion over ``t in [0, 1]`` is a smooth, known deformation: the head nods
(``y`` offset ``0.08 sin(2 pi t)`` on the head, blended in by a sigmoid along the body axis) while the body bends
sideways (``x`` offset ``0.12 sin(pi t) s^2``, ``s`` the normalised position from tail to head). A camera flies
an arc around it on a cumulative cubic B-spline (:class:`lumigrad.cameras.SplineTrajectory`, 6 control poses);
``--frames`` RGB frames are rendered at evenly spaced times (the raster integrator, two directional lights).

Unknowns, fitted jointly from two thirds of the frames by gradient descent through
:func:`lumigrad.render_sequence`:

* the deformation, a :class:`lumigrad.geometry.BasisDeformation` (``--basis`` cosine shapes in time, each a
  per-vertex offset field), parameterised with large steps (``u = (I + lambda L) B``, Nicolet et al. 2021,
  :mod:`lumigrad.optim.large_steps`) so the sparse silhouette and texture gradients move smooth patches; or, with
  ``--deformation mlp``, a :class:`lumigrad.geometry.MLPDeformation` (of positions scaled to about [-1, 1]) fitted
  by Adam;
* the camera trajectory, started from the truth perturbed by ``--perturb-deg`` degrees (control rotations) and
  ``--perturb-shift`` (fraction of the camera distance, control centres), drawn from ``--seed``.

The first half of the steps fit the camera alone (the rest shape is within about 1% of the diagonal of every
frame's true shape), then both are fitted. Joint fitting of shape and camera has a gauge freedom (moving the
whole cow or moving the camera give the same image). ``--gauge rigid`` (the default) fixes it: the deformation is
wrapped in :class:`lumigrad.geometry.NonRigidDeformation`, which projects the best-fit rigid motion out of the
offsets, so the camera must explain every rigid motion (the true motion is stated in the same gauge: its rigid
part removed); ``--gauge free`` leaves the offsets unconstrained. A penalty on the offsets' size
(``--offset-weight``) also keeps the cow near its rest shape. Frames 1, 4, 7, ... (interior times)
are held out: the script prints their PSNR (deformation and camera both evaluated at held-out times), the vertex
error (mean distance to the true deformed vertices over all frames, % of the bounding-box diagonal) and the
camera error (rotation in degrees, centre in % of the distance, means over all frames).
It writes ``OUT/images/sequence.png`` (a strip: target, initial, fitted rows), ``OUT/assets/sequence.gif`` and,
with the video extra, ``OUT/assets/sequence.mp4``.

    python examples/14_deforming_avatar.py                # 64 px, 12 frames, 200 steps
    python examples/14_deforming_avatar.py --deformation mlp   # the MLP deformation instead of the basis
    python examples/14_deforming_avatar.py --steps 3 --size 24 --frames 4
"""

import argparse
import math
import time
from pathlib import Path

import torch

import lumigrad as lg
from lumigrad.app.report import save_sequence
from lumigrad.cameras import SplineTrajectory
from lumigrad.conventions import invert_rigid
from lumigrad.geometry import BasisDeformation, MLPDeformation, NonRigidDeformation, deform_verts, remove_rigid_motion
from lumigrad.optim import AdamUniform
from lumigrad.optim.large_steps import SmoothingSolver, from_differential, smoothing_matrix
from lumigrad.scene import deformed_scene

FOV_Y = 0.75
DISTANCE = 3.2


def true_offsets(verts: torch.Tensor, t: float) -> torch.Tensor:
    """The known deformation at time ``t``: a head nod and a sideways bend, ``[V, 3]``, rigid part removed.

    A rigid motion of the cow is indistinguishable from a motion of the camera; the truth is stated in the gauge
    the fit uses (:func:`lumigrad.geometry.remove_rigid_motion`: the camera carries every rigid motion).
    """
    z = verts[:, 2]
    s = (z - z.min()) / (z.max() - z.min())       # 0 at the tail, 1 at the nose
    head = torch.sigmoid((s - 0.75) / 0.05)
    off = torch.zeros_like(verts)
    off[:, 0] = 0.12 * math.sin(math.pi * t) * s ** 2
    off[:, 1] = 0.08 * math.sin(2 * math.pi * t) * head
    return remove_rigid_motion(verts, off)


def camera_controls(count: int = 6) -> torch.Tensor:
    """``world_to_cam [count, 4, 4]``: eyes on an arc from the cow's left-front to its right-front."""
    az = torch.linspace(-1.1, 1.1, count, dtype=torch.float64) + 0.25
    eyes = torch.stack([DISTANCE * torch.sin(az), 0.9 + 0.15 * torch.cos(2 * az), DISTANCE * torch.cos(az)], -1)
    target = torch.tensor([0.0, 0.05, 0.2], dtype=torch.float64)
    return lg.Camera.look_at(eyes, target.expand_as(eyes), fov_y=FOV_Y).world_to_cam


def rotation_error_deg(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    rel = A[..., :3, :3].transpose(-1, -2) @ B[..., :3, :3]
    cos = ((rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
    return torch.rad2deg(torch.acos(cos))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--frames", type=int, default=12, help="frames in [0, 1]; every third (1, 4, 7, ...) is held out")
    ap.add_argument("--deformation", choices=("basis", "mlp"), default="basis",
                    help="basis: cosine shapes in time (large steps); mlp: a time-conditioned MLP (Adam)")
    ap.add_argument("--basis", type=int, default=5, help="cosine shapes in time")
    ap.add_argument("--lr-mlp", type=float, default=1e-3, help="Adam rate of the MLP deformation")
    ap.add_argument("--perturb-deg", type=float, default=3.0)
    ap.add_argument("--perturb-shift", type=float, default=0.03)
    ap.add_argument("--lr-camera", type=float, default=1e-2, help="Adam rate of the trajectory (rad, world units)")
    ap.add_argument("--offset-weight", type=float, default=0.1, help="penalty on the mean squared offset")
    ap.add_argument("--gauge", choices=("rigid", "free"), default="rigid",
                    help="rigid: remove the offsets' rigid part (the camera explains rigid motion); free: keep it")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="deforming-avatar-out")
    ap.add_argument("--mp4", action="store_true", help="also write assets/sequence.mp4 (needs lumigrad[video])")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    started = time.perf_counter()

    mesh = lg.data.load_spot()
    rest = lg.scene_from_mesh(mesh)
    name = next(iter(rest.meshes))
    rest.add_light("key", lg.DirectionalLight(torch.tensor([-0.4, -0.8, -0.5]), 2.5))
    rest.add_light("fill", lg.DirectionalLight(torch.tensor([0.6, -0.2, 0.7]), 1.0))
    verts = rest.meshes[name].verts
    diagonal = float((verts.max(0).values - verts.min(0).values).norm())
    times = [k / (args.frames - 1) for k in range(args.frames)] if args.frames > 1 else [0.0]
    # every third frame from the second on is held out (interior times: the spline interpolates there)
    held = [t for k, t in enumerate(times) if k % 3 == 1 and k < len(times) - 1] or times[:1]
    train = [t for t in times if t not in held] or times

    K = lg.Camera.look_at([0.0, 0, -3], [0.0, 0, 0], fov_y=FOV_Y, width=args.size, height=args.size).K
    controls = camera_controls()
    truth_traj = SplineTrajectory(controls.float(), K, args.size, args.size, t_start=0.0, dt=1.0 / 3.0)
    truth_scene = lambda t: _posed(rest, name, verts + true_offsets(verts, t))  # noqa: E731
    with torch.no_grad():
        targets = lg.render_sequence(truth_scene, truth_traj, times, background=0.0).rgba

    # the initial guess: the rest shape, and the trajectory with perturbed control poses
    traj = SplineTrajectory(controls.float(), K, args.size, args.size, t_start=0.0, dt=1.0 / 3.0)
    g = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():
        axis = torch.nn.functional.normalize(torch.randn(controls.shape[0], 3, generator=g), dim=-1)
        traj.rotation += math.radians(args.perturb_deg) * axis
        traj.centres += args.perturb_shift * DISTANCE * torch.nn.functional.normalize(
            torch.randn(controls.shape[0], 3, generator=g), dim=-1)
    if args.deformation == "basis":
        inner = BasisDeformation(verts.shape[0], args.basis, (0.0, 1.0))
        solver = SmoothingSolver(smoothing_matrix(verts, rest.meshes[name].faces, lambda_=30.0))
        u = torch.zeros(verts.shape[0], 3 * args.basis, requires_grad=True)
        opt_shape = AdamUniform([u], lr=2e-3)

        def set_basis():
            """B = M^-1 u as [K, V, 3] on a leaf copy the frames use (so the solve is back-propagated once)."""
            basis = from_differential(u, solver).reshape(-1, args.basis, 3).permute(1, 0, 2)
            inner.basis = basis.detach().requires_grad_(True)
            return basis
    else:
        # positions scaled to about [-1, 1] for the encoding: the deformation of verts / scale, times scale
        inner = _ScaledMLP(MLPDeformation(hidden=32, layers=2, freqs_x=3, freqs_t=2, seed=args.seed),
                           float(verts.abs().max()))
        opt_shape = torch.optim.Adam(list(inner.parameters().values()), lr=args.lr_mlp)
        set_basis = lambda: None  # noqa: E731
    deform = NonRigidDeformation(inner) if args.gauge == "rigid" else inner

    def fitted_scene(t):
        return deformed_scene(rest, deform, t, mesh=name)

    with torch.no_grad():
        set_basis()
        initial = lg.render_sequence(fitted_scene, traj, times, background=0.0).rgba
        initial_errors = _errors(verts, deform, traj, truth_traj, times, diagonal)

    opt_cam = torch.optim.Adam([traj.rotation, traj.centres], lr=args.lr_camera)
    camera_only = int(0.5 * args.steps)
    sched_shape = torch.optim.lr_scheduler.CosineAnnealingLR(opt_shape, max(1, args.steps - camera_only))
    sched_cam = torch.optim.lr_scheduler.CosineAnnealingLR(opt_cam, max(1, args.steps))
    for step in range(args.steps):
        opt_shape.zero_grad()
        opt_cam.zero_grad()
        basis = set_basis()
        # frames one at a time under autograd (memory of one frame's graph); the basis gradient is accumulated
        # on the leaf copy, then sent through the smoothing solve once
        for t in train:
            frame = lg.render_sequence(fitted_scene, traj, [t], background=0.0).rgba[0]
            loss = (frame - targets[times.index(t)]).pow(2).mean() / len(train)
            offsets = deform.offsets(verts, [t])
            loss = loss + args.offset_weight * offsets.pow(2).sum(-1).mean() / len(train)
            loss.backward()
        if basis is not None:
            basis.backward(inner.basis.grad)
        if step >= camera_only:  # first the camera alone (the rest shape is close), then both
            opt_shape.step()
            sched_shape.step()
        opt_cam.step()
        sched_cam.step()

    with torch.no_grad():
        set_basis()
        final = lg.render_sequence(fitted_scene, traj, times, background=0.0).rgba
        final_errors = _errors(verts, deform, traj, truth_traj, times, diagonal)
    held_idx = [times.index(t) for t in held]
    psnr = lambda a: float(-10 * torch.log10((a[held_idx] - targets[held_idx]).pow(2).mean()))  # noqa: E731

    out = Path(args.out)
    rows = torch.cat([targets, initial, final], 0)[..., :3]
    save_sequence(out, rows, fps=8, columns=len(times), mp4=args.mp4)
    elapsed = time.perf_counter() - started
    print(f"frames {len(times)} ({len(train)} fitted, {len(held)} held out), {args.size} px, {args.steps} steps, "
          f"{args.deformation} deformation, gauge {args.gauge}, "
          f"{elapsed:.1f} s")
    print(f"{'':18s}{'initial':>10s}{'final':>10s}")
    print(f"{'held-out PSNR dB':18s}{psnr(initial):10.2f}{psnr(final):10.2f}")
    for key, label in (("vertex_pct", "vertex error %"), ("rotation_deg", "camera rot deg"),
                       ("centre_pct", "camera centre %")):
        print(f"{label:18s}{initial_errors[key]:10.3f}{final_errors[key]:10.3f}")
    print(f"wrote {out / 'images' / 'sequence.png'} (rows: target, initial, fitted) and {out / 'assets'}")
    return {"psnr_initial": psnr(initial), "psnr_final": psnr(final), "initial": initial_errors,
            "final": final_errors, "seconds": elapsed}


class _ScaledMLP:
    """An MLP deformation of ``verts / scale`` (encoding sized for about [-1, 1]) whose offsets are scaled back."""

    def __init__(self, mlp, scale):
        self.mlp, self.scale = mlp, scale

    def parameters(self):
        return self.mlp.parameters()

    def offsets(self, verts, times):
        return self.scale * self.mlp.offsets(verts / self.scale, times)


def _posed(rest, name, verts):
    from dataclasses import replace
    import copy

    scene = copy.copy(rest)
    scene.meshes[name] = replace(rest.meshes[name], verts=verts)
    return scene


def _errors(verts, deform, traj, truth_traj, times, diagonal):
    fitted = deform_verts(verts, deform, times)
    truth = torch.stack([verts + true_offsets(verts, t) for t in times])
    w2c, w2c_true = traj.world_to_cam(times), truth_traj.world_to_cam(times)
    centres = invert_rigid(w2c)[:, :3, 3]
    centres_true = invert_rigid(w2c_true)[:, :3, 3]
    return {"vertex_pct": 100 * float((fitted - truth).norm(dim=-1).mean()) / diagonal,
            "rotation_deg": float(rotation_error_deg(w2c, w2c_true).mean()),
            "centre_pct": 100 * float((centres - centres_true).norm(dim=-1).mean()) / DISTANCE}


if __name__ == "__main__":
    main()
