"""Motion capture by rendering: recover CesiumMan's joint rotations over a sequence from multi-view images.

CesiumMan (``../shared/data/gltf-cesium-man``: 3273 vertices, 19 joints, a textured skinned glTF) is posed by
its own walk animation at ``--frames`` frames (``--fps`` apart) and rendered from ``--cameras`` cameras on a
ring (RGB from its texture, plus coverage alpha; lumigrad's hard rasterizer with analytic antialiasing, so the
silhouettes carry gradients). Those images are the only observations.

**Unknowns.** Every frame's local rotation of every joint, as an axis-angle offset ``omega[f, j]`` from the rest
rotation (``R = R_rest exp(omega)``), and the root joint's translation offset: ``frames x (19 x 3 + 3)``
numbers, all frames in one batch (batched forward kinematics + linear blend skinning + one batched render).

**Start.** ``--start-error D`` starts every joint ``D`` degrees away from the truth (one random axis per joint,
the same in every frame); ``--start-error rest`` starts from the rest (T) pose, which is 1.6 - 56 degrees away.

**Loss.** Mean squared error of the RGBA images, coarse to fine (box-filtered by 8, 4, 2, then full
resolution: the blurred images widen the basin), plus ``--smooth`` (default 1e-2) times the mean squared second difference of
``omega`` and of the root offset over frames (the temporal smoothness prior). Adam with a cosine-decayed step.

**Metric.** The geodesic angle between recovered and true local rotations, in degrees, per frame and over
all, over the joints that move the mesh (every joint with skin weight on itself or a descendant: all 19
here). Silhouettes alone leave the twist of a limb about its own axis ambiguous; the texture and the
several views constrain it, and the per-joint table shows which joints stay the least determined.

Writes (with ``--out``): ``fitted.glb`` (the source mesh and skin with the fitted animation, via
:func:`lumigrad.io.write_gltf_animation`) and ``strip.png`` (rows: target, start, fitted; camera 0).

    python examples/13_motion_capture.py --frames 12 --cameras 4 --size 128 --steps 600 --out mocap-out
"""

import argparse
import math
import time
from pathlib import Path
from typing import Dict

import torch
import torch.nn.functional as F

import lumigrad as lg
from lumigrad.animation import (axis_angle_to_matrix, forward_kinematics, linear_blend_skinning,
                                matrix_to_axis_angle, quaternion_to_matrix, skin_matrices)

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
CESIUM = DATA / "gltf-cesium-man" / "glTF" / "CesiumMan.gltf"
DTYPE = torch.float64  # kinematics in float64; the rasterizer runs in float32


# ------------------------------------------------------------------------------------------- the character
def load_character(path: Path) -> Dict:
    """CesiumMan's skeleton, bind-pose mesh, skin, texture and walk animation, read by :func:`lumigrad.io.read_gltf`."""
    import warnings

    from lumigrad.animation import normalize_skin_weights

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the glTF stores weights rounded to float32: renormalised below
        scene = lg.io.read_gltf(path, dtype=DTYPE)
        (mesh,) = scene.meshes.values()
        weights = normalize_skin_weights(mesh.skin_weights.to(DTYPE))
    return {"skeleton": mesh.skeleton, "verts": mesh.verts, "faces": mesh.faces.long(), "joints": mesh.joints.long(),
            "weights": weights, "uv": mesh.uv.float(), "texture": mesh.material.base_color_texture[..., :3].float(),
            "animation": next(iter(scene.animations.values()))}


def true_pose(character: Dict, times: torch.Tensor):
    """Local rotations ``[T, J, 3, 3]`` and translations ``[T, J, 3]`` of the character's animation at ``times``."""
    sk = character["skeleton"]
    sampled = character["animation"].sample(times)
    T, J = times.shape[0], sk.num_joints
    rot = quaternion_to_matrix(sk.rest_rotation).expand(T, J, 3, 3).clone()
    trans = sk.rest_translation.expand(T, J, 3).clone()
    for j, name in enumerate(sk.names):
        props = sampled.get(name, {})
        if "rotation" in props:
            rot[:, j] = quaternion_to_matrix(props["rotation"])
        if "translation" in props:
            trans[:, j] = props["translation"]
    return rot, trans


def posed_verts(character: Dict, rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """Skinned vertex positions ``[T, V, 3]`` for local joint rotations / translations ``[T, J, ...]``."""
    sk = character["skeleton"]
    mats = skin_matrices(sk, forward_kinematics(sk, rotation, translation))
    return linear_blend_skinning(character["verts"], character["joints"], character["weights"], mats)


def joints_that_move_the_mesh(character: Dict) -> torch.Tensor:
    """Bool ``[J]``: joints with skin weight on themselves or on a descendant (their rotation moves vertices)."""
    sk = character["skeleton"]
    J = sk.num_joints
    used = torch.zeros(J, dtype=torch.bool)
    used[character["joints"][character["weights"] > 1e-4].unique()] = True
    parents = sk.parents.tolist()
    for j in reversed(sk.order):  # children first: propagate up to the ancestors
        if used[j] and parents[j] >= 0:
            used[parents[j]] = True
    return used


# ---------------------------------------------------------------------------------------------- rendering
def ring_cameras(count: int, size: int) -> lg.Camera:
    """``count`` cameras on a ring around the walking figure, alternately a little above and below."""
    angle = torch.arange(count) * (2 * math.pi / count) + 0.4
    eye = torch.stack([2.6 * torch.cos(angle), 0.9 + 0.3 * torch.sin(2 * angle), 2.6 * torch.sin(angle)], -1)
    target = torch.tensor([0.0, 0.75, 0.0]).expand(count, 3)
    return lg.Camera.look_at(eye, target, torch.tensor([0.0, 1.0, 0.0]), width=size, height=size, fov_y=0.75)


def render(character: Dict, verts: torch.Tensor, cams: lg.Camera) -> torch.Tensor:
    """RGBA images ``[T, C, H, W, 4]`` of posed ``verts [T, V, 3]`` (texture colour, coverage alpha)."""
    faces = character["faces"].int()
    v = verts.float()[:, None]  # [T, 1, V, 3] against C cameras
    frags = lg.rasterize(v, faces, cams)
    colour = lg.texture(character["texture"], lg.interpolate(character["uv"], frags, faces), filter="bilinear")
    mask = frags.mask.float()[..., None]
    rgba = torch.cat([colour * mask, mask], -1)
    return lg.antialias(rgba, frags, v.expand(-1, cams.batch_shape[0], -1, -1), faces, cams)


def _pool(images: torch.Tensor, k: int) -> torch.Tensor:
    if k == 1:
        return images
    H, W = images.shape[-3:-1]
    x = images.reshape(-1, H, W, 4).permute(0, 3, 1, 2)
    return F.avg_pool2d(x, k)


# -------------------------------------------------------------------------------------------------- fit
def geodesic_degrees(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle of ``a^T b`` in degrees, ``[..., 3, 3] -> [...]``."""
    cos = (((a.transpose(-1, -2) @ b).diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
    return torch.rad2deg(torch.acos(cos))


def fit(frames: int = 12, fps: float = 12.0, cameras: int = 4, size: int = 128, steps: int = 600,
        start_error="10", smooth: float = 1e-2, lr: float = 0.05, seed: int = 0, gltf: Path = CESIUM) -> Dict:
    character = load_character(gltf)
    sk = character["skeleton"]
    J = sk.num_joints
    times = torch.arange(frames, dtype=DTYPE) / fps
    rot_true, trans_true = true_pose(character, times)
    cams = ring_cameras(cameras, size)
    with torch.no_grad():
        target = render(character, posed_verts(character, rot_true, trans_true), cams)

    rest_rot = quaternion_to_matrix(sk.rest_rotation)
    if str(start_error) == "rest":
        omega = torch.zeros(frames, J, 3, dtype=DTYPE)
    else:
        g = torch.Generator().manual_seed(seed)
        axis = torch.nn.functional.normalize(torch.randn(1, J, 3, generator=g, dtype=DTYPE), dim=-1)
        start = rot_true @ axis_angle_to_matrix(axis * math.radians(float(start_error)))
        omega = matrix_to_axis_angle(rest_rot.transpose(-1, -2) @ start)
    omega.requires_grad_(True)
    root = torch.zeros(frames, 3, dtype=DTYPE, requires_grad=True)  # offset of the root joint's translation

    def pose():
        translation = sk.rest_translation.expand(frames, J, 3).clone()
        translation[:, 0] = translation[:, 0] + root
        return rest_rot @ axis_angle_to_matrix(omega), translation

    def second_difference(x):
        return ((x[2:] - 2 * x[1:-1] + x[:-2]) ** 2).sum(-1).mean() if x.shape[0] > 2 else x.sum() * 0

    with torch.no_grad():
        initial_images = render(character, posed_verts(character, *pose()), cams)
        initial_rot = pose()[0]
    opt = torch.optim.Adam([omega, root], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1), eta_min=lr / 25)
    levels = [k for k in (8, 4, 2, 1) if size // k >= 8]
    losses = []
    for step in range(steps):
        k = levels[min(int(len(levels) * step / steps), len(levels) - 1)]  # equal shares, coarse to fine
        images = render(character, posed_verts(character, *pose()), cams)
        data = ((_pool(images, k) - _pool(target, k)) ** 2).mean()
        loss = data + smooth * (second_difference(omega) + second_difference(root))
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        losses.append(data.item())

    with torch.no_grad():
        rot, trans = pose()
        final_images = render(character, posed_verts(character, rot, trans), cams)
    moving = joints_that_move_the_mesh(character)
    error = geodesic_degrees(rot, rot_true)[:, moving]  # [T, J_moving]
    start = geodesic_degrees(initial_rot, rot_true)[:, moving]
    return {"character": character, "times": times, "rotation": rot, "translation": trans,
            "error_per_frame": error.mean(1), "error": float(error.mean()), "start_error": float(start.mean()),
            "error_per_joint": error.mean(0), "joint_names": [n for n, m in zip(sk.names, moving) if m],
            "root_error": float((trans[:, 0] - trans_true[:, 0]).norm(dim=-1).mean()),
            "images": (target, initial_images, final_images), "losses": losses, "moving": int(moving.sum())}


def main(argv=None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--fps", type=float, default=12.0, help="frame rate the animation is sampled at")
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--size", type=int, default=128, help="image width and height in pixels")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--start-error", default="10",
                        help="degrees every joint starts away from the truth, or 'rest' for the rest pose")
    parser.add_argument("--smooth", type=float, default=1e-2, help="weight of the second-difference prior")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--gltf", type=Path, default=CESIUM)
    parser.add_argument("--out", default=None, help="folder for fitted.glb and strip.png")
    args = parser.parse_args(argv)
    if not args.gltf.exists():
        print(f"motion capture: {args.gltf} is missing (../shared/data beside the checkout); nothing to do")
        return {}

    t0 = time.perf_counter()
    r = fit(args.frames, args.fps, args.cameras, args.size, args.steps, args.start_error, args.smooth, args.lr,
            gltf=args.gltf)
    seconds = time.perf_counter() - t0
    print(f"motion capture of CesiumMan: {args.frames} frames, {args.cameras} cameras at {args.size} px, "
          f"{args.steps} steps, {seconds:.1f} s")
    print(f"  mean joint-angle error over the {r['moving']} joints that move the mesh: "
          f"{r['start_error']:.2f} deg at the start -> {r['error']:.2f} deg")
    print("  per frame: " + " ".join(f"{e:.2f}" for e in r["error_per_frame"].tolist()))
    print("  per joint: " + " ".join(f"{n}={e:.1f}" for n, e in zip(r["joint_names"], r["error_per_joint"].tolist())))
    print(f"  root translation error {1000 * r['root_error']:.2f} mm (mean over frames)")
    if args.out:
        from lumigrad.app.report import save_image_grid

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        lg.io.write_gltf_animation(args.gltf, out / "fitted.glb", r["times"], r["rotation"],
                                   translations={0: r["translation"][:, 0]}, name="motion_capture")
        strip = torch.cat([im[:, 0, ..., :3] for im in r["images"]])  # camera 0, rows target / start / fitted
        save_image_grid(out / "strip.png", strip, columns=args.frames)
        print(f"wrote {out}/fitted.glb (the fitted animation) and {out}/strip.png (rows: target, start, fitted)")
    r["seconds"] = seconds
    return r


if __name__ == "__main__":
    main()
