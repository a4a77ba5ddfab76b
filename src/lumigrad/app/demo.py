"""The demo's inverse problems on the embedded Spot cow: recover a pose, a texture, or both, from renders.

Each function renders targets with known parameters, starts from perturbed ones and fits them by gradient
descent through ``rasterize -> interpolate -> texture -> antialias``. They are small library functions so
that the tests, the ``lumigrad demo`` command and the examples share one implementation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Union

import torch

from ..cameras.camera import Camera
from ..conventions import axis_angle_to_matrix, matrix_to_axis_angle
from ..mesh import Mesh
from ..raster import antialias, build_mipmaps, interpolate, rasterize, texture


def orbit_cameras(num_views: int, size: int, *, radius: float = 3.0, elevation: float = 0.35,
                  target=(0.0, 0.1, 0.19), fov_y: float = 0.75, dtype=torch.float32) -> Camera:
    """``num_views`` cameras evenly spaced on a circle around ``target`` (world +y up), batched."""
    angles = torch.arange(num_views, dtype=torch.float64) * (2 * math.pi / num_views) + 0.3
    heights = elevation * torch.cos(torch.arange(num_views, dtype=torch.float64) * 1.7)
    eye = torch.stack([radius * torch.sin(angles), heights * radius, radius * torch.cos(angles)], -1)
    tgt = torch.tensor(target, dtype=torch.float64).expand_as(eye)
    return Camera.look_at(eye.to(dtype), tgt.to(dtype), torch.tensor([0.0, 1.0, 0.0], dtype=dtype), fov_y=fov_y,
                          width=size, height=size)


def pose_verts(verts: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor,
               center: torch.Tensor) -> torch.Tensor:
    """Rotate ``verts [V, 3]`` about ``center`` by the axis-angle ``rotation [3]`` and shift by ``translation``."""
    R = axis_angle_to_matrix(rotation)
    return (verts - center) @ R.T + center + translation


def render_textured(mesh: Mesh, verts: torch.Tensor, tex: torch.Tensor, cameras: Camera,
                    mipmaps: Optional[List[torch.Tensor]] = None, background: float = 0.0,
                    filter: str = "trilinear") -> torch.Tensor:
    """Render ``[N, H, W, 4]`` RGB + coverage of a textured mesh: filtered texture, antialiased edges."""
    frags = rasterize(verts, mesh.faces, cameras, return_bary_derivs=filter == "trilinear")
    if filter == "trilinear":
        uv, duv = interpolate(mesh.uv, frags, mesh.uv_faces, return_derivatives=True)
        rgb = texture(tex, uv, uv_derivs=duv, mipmaps=mipmaps, mask=frags.mask)
    else:
        rgb = texture(tex, interpolate(mesh.uv, frags, mesh.uv_faces), filter=filter, mask=frags.mask)
    mask = frags.mask[..., None].to(rgb.dtype)
    color = torch.cat([rgb * mask + background * (1 - mask), mask], -1)
    return antialias(color, frags, verts, mesh.faces, cameras)


def rotation_error_deg(rotation: torch.Tensor, true_rotation: torch.Tensor) -> float:
    """Angle in degrees of ``R_true^T R`` for two axis-angle rotations."""
    R = axis_angle_to_matrix(rotation.detach().double())
    R_true = axis_angle_to_matrix(true_rotation.detach().double())
    return float(matrix_to_axis_angle(R_true.T @ R).norm()) * 180 / math.pi


def psnr(a: torch.Tensor, b: torch.Tensor, mask: Optional[torch.Tensor] = None) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1], over ``mask`` (broadcast) when given."""
    err = (a.detach().double() - b.detach().double()) ** 2
    if mask is not None:
        m = mask.expand_as(err)
        err = err[m]
    return float(-10 * torch.log10(err.mean().clamp_min(1e-20)))


@dataclass
class FitResult:
    """What a fit recovered and how well; images are ``[N, H, W, 4]`` (RGB + coverage)."""

    metrics: Dict[str, float]
    losses: List[float]
    target: torch.Tensor
    initial: torch.Tensor
    final: torch.Tensor
    texture: Optional[torch.Tensor] = None
    true_texture: Optional[torch.Tensor] = None
    history: Dict[str, List[float]] = field(default_factory=dict)


def fit_spot(
    *,
    recover_pose: bool = True,
    recover_texture: bool = True,
    num_views: int = 8,
    image_size: int = 160,
    texture_size: int = 96,
    steps: int = 200,
    init_rotation_deg: float = 15.0,
    init_translation: float = 0.08,
    seed: int = 0,
    pose_lr: float = 0.01,
    texture_lr: float = 0.1,
    mesh: Optional[Mesh] = None,
    progress: Optional[Callable[[int, float, Dict[str, float]], None]] = None,
    device: Union[str, torch.device] = "cpu",
) -> FitResult:
    """Recover the pose and / or the albedo texture of the Spot cow from ``num_views`` rendered targets.

    Targets are rendered with the true pose (identity) and the true texture (Spot's albedo, resampled to
    ``texture_size``). The fit starts from a pose rotated by ``init_rotation_deg`` about a random axis and
    shifted by ``init_translation`` (if ``recover_pose``) and from a flat grey texture (if ``recover_texture``),
    and minimises the mean squared error of RGB and coverage with Adam (learning rates ``pose_lr`` and
    ``texture_lr``, cosine-annealed).

    Returns a :class:`FitResult`; metrics hold ``rotation_error_deg``, ``translation_error`` and
    ``texture_psnr_db`` (over the texels the views determine, see :func:`visible_texels`) as applicable.
    The fit runs on ``device``; the result's images and textures are on the CPU.
    """
    from ..data import load_spot

    gen = torch.Generator().manual_seed(seed)
    device = torch.device(device)
    mesh = (mesh or load_spot()).to(device)
    true_tex = _resize_texture(mesh.texture[..., :3], texture_size)
    cams = orbit_cameras(num_views, image_size).to(device)
    center = mesh.verts.mean(0)
    zero = torch.zeros(3, device=device)
    with torch.no_grad():
        target = render_textured(mesh, mesh.verts, true_tex, cams, build_mipmaps(true_tex))

    axis = torch.randn(3, generator=gen).to(device)
    axis = axis / axis.norm()
    direction = torch.randn(3, generator=gen).to(device)
    direction = direction / direction.norm()
    rotation = (axis * math.radians(init_rotation_deg) if recover_pose else zero.clone()).requires_grad_(recover_pose)
    translation = (direction * init_translation if recover_pose else zero.clone()).requires_grad_(recover_pose)
    tex = (torch.full_like(true_tex, 0.5) if recover_texture else true_tex.clone()).requires_grad_(recover_texture)

    groups = []
    if recover_pose:
        groups.append({"params": [rotation, translation], "lr": pose_lr})
    if recover_texture:
        groups.append({"params": [tex], "lr": texture_lr})
    if not groups:
        raise ValueError("fit_spot needs recover_pose or recover_texture")
    opt = torch.optim.Adam(groups)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1), eta_min=1e-4)

    def render(current_tex):
        verts = pose_verts(mesh.verts, rotation, translation, center)
        return render_textured(mesh, verts, current_tex, cams)

    with torch.no_grad():
        initial = render(tex)
    losses: List[float] = []
    history: Dict[str, List[float]] = {"rotation_error_deg": [], "translation_error": []}
    for step in range(steps):
        opt.zero_grad(set_to_none=True)
        image = render(tex)
        loss = ((image - target) ** 2).mean()
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            tex.clamp_(0, 1)
        losses.append(float(loss.detach()))
        if recover_pose:
            history["rotation_error_deg"].append(rotation_error_deg(rotation, zero))
            history["translation_error"].append(float(translation.detach().norm()))
        if progress is not None:
            progress(step, losses[-1], {k: v[-1] for k, v in history.items() if v})

    with torch.no_grad():
        final = render(tex)
    metrics: Dict[str, float] = {"final_loss": losses[-1] if losses else float("nan"),
                                 "image_psnr_db": psnr(final[..., :3], target[..., :3])}
    if recover_pose:
        metrics["rotation_error_deg"] = rotation_error_deg(rotation, zero)
        metrics["translation_error"] = float(translation.detach().norm())
    if recover_texture:
        with torch.no_grad():
            posed = pose_verts(mesh.verts, rotation, translation, center)
        seen = visible_texels(mesh, posed, tex.detach(), cams)
        metrics["texture_psnr_db"] = psnr(tex, true_tex, seen[..., None])
        metrics["visible_texel_fraction"] = float(seen.float().mean())
    return FitResult(metrics, losses, target.cpu(), initial.cpu(), final.cpu(), tex.detach().cpu(), true_tex.cpu(),
                     history)


def visible_texels(mesh: Mesh, verts: torch.Tensor, tex: torch.Tensor, cameras: Camera,
                   min_weight: float = 0.25) -> torch.Tensor:
    """``[Ht, Wt]`` bool: texels seen at full resolution with a total bilinear weight of at least
    ``min_weight`` pixels, summed over the views.

    (Through a mip pyramid every texel reaches the image via the coarse levels, and a texel touched only by
    the tail of one pixel's filter at a silhouette is seen but not determined by the images.)
    """
    probe = tex.detach().clone().requires_grad_(True)
    image = render_textured(mesh, verts, probe, cameras, filter="bilinear")
    (grad,) = torch.autograd.grad(image[..., 0].sum(), probe)
    return grad[..., 0] >= min_weight


def _resize_texture(tex: torch.Tensor, size: int) -> torch.Tensor:
    """Area-resample ``tex [H, W, C]`` to ``[size, size, C]``."""
    if tex.shape[0] == size and tex.shape[1] == size:
        return tex.clone()
    x = tex.permute(2, 0, 1)[None]
    y = torch.nn.functional.interpolate(x, size=(size, size), mode="area")
    return y[0].permute(1, 2, 0).contiguous()
