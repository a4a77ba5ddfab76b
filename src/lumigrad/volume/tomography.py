"""X-ray tomography: absorption line integrals through a voxel density seen by parallel- and cone-beam cameras.

An X-ray detector pixel measures ``I = I0 exp(-∫ sigma(r(s)) ds)``: absorption only, no emission or scattering,
``s`` the arc length along the pixel's ray in world units. Geometry comes from a :class:`~lumigrad.Camera`:

* **parallel beam**: an orthographic camera (``projection="orthographic"``). Each pixel's ray is the whole line
  through ``(x, y, 0)`` along the camera's +z; the integral covers the entire line, so where the camera sits
  along its viewing axis does not matter.
* **cone beam**: a perspective (pinhole) camera. The point source is the camera centre and the detector is the
  image plane; each pixel integrates along the half-line from the source through the pixel (``s >= 0``).

``near`` / ``far`` of the camera play no part. The density is a dense voxel tensor ``[D, H, W]`` filling an
axis-aligned ``box`` ``[[x0, y0, z0], [x1, y1, z1]]`` (world units): ``density[k, j, i]`` is the voxel whose
centre is ``lo + (i + 0.5, j + 0.5, k + 0.5) * voxel_size``, i.e. the last axis runs along x, as in
``torch.nn.functional.grid_sample``. Outside the box the density is zero.

Two discretisations of the integral (:func:`project`'s ``method``):

* ``"trilinear"``: the density is the trilinear interpolant of the voxel values (clamped to the border value
  within the outer half voxel). Each ray is clipped to the box and split into ``S = ceil(diagonal / step)``
  equal segments, integrated by the midpoint rule. Differentiable in the density and in the camera's ``K`` and
  ``world_to_cam`` (through the sample positions). Error: the midpoint rule on a piecewise-cubic integrand,
  ``O(step^2)`` where the interpolant is smooth and ``O(step * voxel)`` per crossed voxel plane where it kinks;
  measured in ``tests/volume/test_tomography.py``.
* ``"voxel"``: the density is piecewise constant per voxel and the integral is exact (up to rounding): the sum
  of voxel values times the ray's chord length in each voxel (Siddon's traversal, vectorised), gathered once
  into a sparse :class:`SystemMatrix` ``A`` so that line integrals are ``A @ density.flatten()``. Differentiable
  in the density only (the chord lengths are computed without gradients). Fast to apply repeatedly, which is
  what :func:`reconstruct` does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional, Tuple

import torch

from .._checks import check_choice, check_number, check_positive_int, check_tensor
from ..cameras.camera import Camera
from ..cameras.projection import look_at

__all__ = ["SystemMatrix", "check_box", "circular_trajectory", "detector_rays", "clip_to_box", "project",
           "line_integrals", "intensity_to_line_integrals", "system_matrix", "apply_system_matrix",
           "total_variation", "reconstruct"]

_MAX_SAMPLES_PER_CHUNK = 1 << 22  # trilinear samples evaluated at once (bounds the no-grad memory)


# --------------------------------------------------------------------------------------------- geometry
def check_box(box, like: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Return ``box`` as a ``[2, 3]`` tensor ``[lo, hi]`` (``lo < hi`` on every axis), or raise naming ``box``.

    Args:
        box: ``[[x0, y0, z0], [x1, y1, z1]]``, a tensor or nested sequence of numbers.
        like: when given, the result takes its dtype and device.
    """
    if not isinstance(box, torch.Tensor):
        try:
            box = torch.as_tensor(box, dtype=torch.float64 if like is None else like.dtype)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"box must be a [2, 3] tensor or nested sequence [[x0, y0, z0], [x1, y1, z1]]; got "
                            f"{type(box).__name__}") from None
    check_tensor(box, "box", trailing=(2, 3), max_dims=2, floating=True, finite=True)
    if like is not None:
        box = box.to(dtype=like.dtype, device=like.device)
    if bool((box[1] <= box[0]).any()):
        raise ValueError(f"box must have lo < hi on every axis (rows [lo, hi]); got {box.tolist()}")
    return box


def circular_trajectory(views: int, *, width: int, height: int, radius: float,
                        projection: Literal["parallel", "cone"] = "parallel", extent: float = 2.0,
                        arc: float = math.pi, start: float = 0.0, centre=(0.0, 0.0, 0.0),
                        dtype: torch.dtype = torch.float32) -> Camera:
    """``views`` cameras on a circle around the world z axis, looking at ``centre``: a CT scan's trajectory.

    View ``n`` sits at angle ``theta_n = start + n * arc / views`` at ``centre + radius (cos theta, sin theta, 0)``
    and looks at ``centre`` with world +z shown upwards, so detector rows are perpendicular to the rotation
    axis (row ``i`` sees one height ``z``; columns run along the circle's tangent), as filtered
    back-projection assumes.

    Args:
        views: number of views (>= 1).
        width, height: detector size in pixels (columns, rows).
        radius: source (or camera) distance from the axis, world units.
        projection: ``"parallel"`` (orthographic cameras) or ``"cone"`` (pinhole cameras, point source at the
            camera centre).
        extent: the detector's height in world units measured at the rotation axis (for ``"cone"``: at distance
            ``radius`` from the source, which sets the cone's opening); its width is ``extent * width / height``.
        arc: angular range covered by the views (``pi`` for a parallel-beam half scan, ``2 pi`` for a full
            circle; cone beam needs ``2 pi`` for :func:`~lumigrad.volume.fbp.filtered_backprojection`).
        start: angle of the first view, radians.
        centre: the point looked at, on the rotation axis.
        dtype: float32 or float64.

    Returns:
        a :class:`~lumigrad.Camera` batched over ``[views]``.

    **Differentiability:** none (a constructor); the returned ``world_to_cam`` can be made to require grad.

    Example:
        >>> cams = circular_trajectory(4, width=8, height=8, radius=3.0)
        >>> cams.batch_shape, cams.projection
        (torch.Size([4]), 'orthographic')
    """
    check_positive_int(views, "views")
    check_positive_int(width, "width")
    check_positive_int(height, "height")
    radius = check_number(radius, "radius", lo=0.0, lo_open=True)
    extent = check_number(extent, "extent", lo=0.0, lo_open=True)
    arc = check_number(arc, "arc", lo=0.0, lo_open=True, hi=2 * math.pi)
    start = check_number(start, "start")
    check_choice(projection, "projection", ("parallel", "cone"))
    c = torch.as_tensor(centre, dtype=dtype)
    check_tensor(c, "centre", trailing=(3,), max_dims=1, floating=True, finite=True)
    theta = start + torch.arange(views, dtype=torch.float64) * (arc / views)
    eye = c.double() + radius * torch.stack([theta.cos(), theta.sin(), torch.zeros_like(theta)], -1)
    w2c = look_at(eye, c.double().expand_as(eye), torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)).to(dtype)
    f = height / extent * (radius if projection == "cone" else 1.0)  # pixels per world unit at the axis
    K = torch.tensor([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]], dtype=dtype)
    return Camera(K=K, world_to_cam=w2c, width=width, height=height, near=1e-3, far=1e6,
                  projection="orthographic" if projection == "parallel" else "perspective")


def detector_rays(camera: Camera) -> Tuple[torch.Tensor, torch.Tensor, bool]:
    """World-space rays through every detector pixel centre of ``camera``.

    Args:
        camera: a :class:`~lumigrad.Camera` (any batch shape, orthographic or perspective).

    Returns:
        ``(origins, directions, whole_line)``: ``origins [*batch, H, W, 3]`` (the source for cone beam, the
        point ``(x, y, 0)`` of the camera frame for parallel beam), unit ``directions [*batch, H, W, 3]``, and
        ``whole_line`` (``True`` for orthographic cameras: the integral covers ``s`` in ``(-inf, inf)``;
        ``False`` for pinholes: ``s >= 0``).

    **Differentiability:** differentiable in ``camera.K`` and ``camera.world_to_cam`` (and ``distortion``).
    """
    if not isinstance(camera, Camera):
        raise TypeError(f"camera must be a lumigrad.Camera; got {type(camera).__name__}")
    H, W = camera.height, camera.width
    dt, dev = camera.dtype, camera.device
    j = torch.arange(W, dtype=dt, device=dev) + 0.5
    i = torch.arange(H, dtype=dt, device=dev) + 0.5
    uv = torch.stack(torch.meshgrid(j, i, indexing="xy"), -1)  # [H, W, 2], (u, v)
    batch = tuple(camera.batch_shape)
    uv = uv.expand(batch + (H, W, 2))
    o_cam, d_cam = camera.ray_origins_directions(uv)
    w2c = camera.world_to_cam.expand(batch + (4, 4)).reshape(batch + (1, 1, 4, 4))
    R, t = w2c[..., :3, :3], w2c[..., :3, 3]
    origins = ((o_cam - t)[..., :, None] * R).sum(-2)  # R^T (x_c - t)
    directions = torch.nn.functional.normalize((d_cam[..., :, None] * R).sum(-2), dim=-1)
    return origins, directions, camera.projection == "orthographic"


def clip_to_box(origins: torch.Tensor, directions: torch.Tensor, box: torch.Tensor,
                whole_line: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """Where each ray enters the box and how long it stays: ``(s_enter, chord)``, both ``[...]``.

    Slab test; rays that miss (or, for half-lines, whose box lies behind the source) get ``s_enter = 0`` and
    ``chord = 0``. Direction components below ``sqrt(tiny)`` are replaced by ``sqrt(tiny)`` so that no division
    makes an infinity (the ray is then parallel to that slab, as it should be).

    Args:
        origins: ray origins ``[..., 3]``, world units.
        directions: unit directions ``[..., 3]`` (``s`` is then arc length).
        box: ``[2, 3]`` ``[lo, hi]`` (validated by the caller).
        whole_line: allow negative ``s`` (parallel beam); otherwise the ray starts at ``s = 0`` (cone beam).

    Returns:
        ``(s_enter [...], chord [...])``.

    **Differentiability:** differentiable in ``origins`` and ``directions`` almost everywhere (the slab
    selections are piecewise).
    """
    lo, hi = box[0], box[1]
    tiny = torch.finfo(directions.dtype).tiny ** 0.5
    d = torch.where(directions.abs() < tiny, torch.full_like(directions, tiny), directions)
    t1, t2 = (lo - origins) / d, (hi - origins) / d
    s_in = torch.minimum(t1, t2).amax(-1)
    s_out = torch.maximum(t1, t2).amin(-1)
    if not whole_line:
        s_in = s_in.clamp_min(0.0)
    hit = s_out > s_in
    s_in = torch.where(hit, s_in, torch.zeros_like(s_in))
    chord = torch.where(hit, s_out - s_in, torch.zeros_like(s_in))
    return s_in, chord


# ------------------------------------------------------------------------------------------- projection
def _check_density(density) -> torch.Tensor:
    check_tensor(density, "density", trailing=(None, None, None), max_dims=3, floating=True)
    if density.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"density must be float32 or float64 (ray geometry needs it); got {density.dtype}")
    if density.numel() == 0:
        raise ValueError(f"density must have at least one voxel; got shape {tuple(density.shape)}")
    if not bool(torch.isfinite(density).all()):
        raise ValueError("density contains NaN or Inf values")
    return density


def line_integrals(density: torch.Tensor, box, camera: Camera, *,
                   method: Literal["trilinear", "voxel"] = "trilinear", step: Optional[float] = None) -> torch.Tensor:
    """Integrate ``density`` along every detector pixel's ray: ``p = ∫ sigma ds`` (world units).

    Args:
        density: absorption coefficient per world unit, ``[D, H, W]`` float, over ``box`` (see the module
            docstring for the layout); finite.
        box: ``[2, 3]`` ``[lo, hi]`` corners of the axis-aligned box the voxels fill, world units.
        camera: parallel-beam (orthographic) or cone-beam (perspective) :class:`~lumigrad.Camera`, any batch.
        method: ``"trilinear"`` (midpoint quadrature of the trilinear interpolant) or ``"voxel"`` (exact chord
            lengths through piecewise-constant voxels).
        step: ``"trilinear"`` only: the largest quadrature step in world units (default: half the smallest
            voxel side). Each ray uses ``ceil(box diagonal / step)`` equal sub-steps of its clipped chord.

    Returns:
        ``[*camera.batch_shape, camera.height, camera.width]``, in ``density``'s dtype; 0 for rays missing the box.

    **Differentiability:** in ``density`` for both methods; ``"trilinear"`` also in ``camera.K`` and
    ``camera.world_to_cam`` through the sample positions (the box's faces are a visibility boundary of
    measure zero: a ray grazing an edge moves its clip points, whose contribution is the border density times
    the moved length, included).

    Example:
        >>> cam = circular_trajectory(1, width=1, height=1, radius=3.0, dtype=torch.float64)
        >>> float(line_integrals(torch.ones(4, 4, 4, dtype=torch.float64), [[-1.] * 3, [1.] * 3], cam))
        2.0
    """
    density = _check_density(density)
    check_choice(method, "method", ("trilinear", "voxel"))
    box = check_box(box, like=density)
    if not isinstance(camera, Camera):
        raise TypeError(f"camera must be a lumigrad.Camera; got {type(camera).__name__}")
    if camera.device != density.device:
        raise ValueError(f"camera is on {camera.device} but density on {density.device}")
    if method == "voxel":
        if step is not None:
            raise ValueError("step applies to method='trilinear' only; the voxel traversal is exact")
        A = system_matrix(tuple(density.shape), box, camera.to(dtype=density.dtype))
        return apply_system_matrix(A, density)
    voxel = (box[1] - box[0]) / torch.tensor(density.shape[::-1], dtype=box.dtype, device=box.device)
    step = 0.5 * float(voxel.min()) if step is None else check_number(step, "step", lo=0.0, lo_open=True)
    return _trilinear_unchecked(density, box, camera.to(dtype=density.dtype), step)


def _trilinear_unchecked(density: torch.Tensor, box: torch.Tensor, camera: Camera, step: float) -> torch.Tensor:
    origins, directions, whole = detector_rays(camera)
    out_shape = origins.shape[:-1]
    o, d = origins.reshape(-1, 3), directions.reshape(-1, 3)
    s_in, chord = clip_to_box(o, d, box, whole)
    S = max(1, math.ceil(float((box[1] - box[0]).norm()) / step))
    frac = (torch.arange(S, dtype=density.dtype, device=density.device) + 0.5) / S  # midpoints
    vol = density[None, None]
    scale = 2.0 / (box[1] - box[0])
    rays_per_chunk = max(1, _MAX_SAMPLES_PER_CHUNK // S)
    parts = []
    for a in range(0, o.shape[0], rays_per_chunk):
        sl = slice(a, a + rays_per_chunk)
        s = s_in[sl, None] + frac * chord[sl, None]  # [R, S]
        p = o[sl, None, :] + s[..., None] * d[sl, None, :]
        g = ((p - box[0]) * scale - 1.0).reshape(1, 1, 1, -1, 3)
        sigma = torch.nn.functional.grid_sample(vol, g, mode="bilinear", padding_mode="border",
                                                align_corners=False).reshape(-1, S)
        parts.append(sigma.sum(-1) * (chord[sl] / S))
    return torch.cat(parts).reshape(out_shape)


def project(density: torch.Tensor, box, camera: Camera, *, i0: float = 1.0,
            method: Literal["trilinear", "voxel"] = "trilinear", step: Optional[float] = None) -> torch.Tensor:
    """Simulate X-ray projections: ``I = i0 * exp(-∫ sigma ds)`` per detector pixel (Beer-Lambert).

    Args:
        density, box, camera, method, step: as in :func:`line_integrals`.
        i0: unattenuated intensity (> 0): what a pixel whose ray misses the box reads.

    Returns:
        intensities ``[*camera.batch_shape, camera.height, camera.width]`` in ``(0, i0]``.

    Raises:
        TypeError / ValueError: naming the argument (NaN or Inf in ``density``, ``i0 <= 0``, a bad ``box``...).

    **Differentiability:** as :func:`line_integrals`; ``dI/dp = -I``.

    Example:
        >>> cam = circular_trajectory(1, width=1, height=1, radius=3.0, dtype=torch.float64)
        >>> project(torch.full((2, 2, 2), 0.5, dtype=torch.float64), [[-1.] * 3, [1.] * 3], cam, i0=10.0)
        tensor([[[3.6788]]], dtype=torch.float64)
    """
    i0 = check_number(i0, "i0", lo=0.0, lo_open=True)
    return i0 * torch.exp(-line_integrals(density, box, camera, method=method, step=step))


def intensity_to_line_integrals(intensity: torch.Tensor, i0: float = 1.0, floor: float = 0.5) -> torch.Tensor:
    """Invert Beer-Lambert: ``p = -log(max(I, floor) / i0)``.

    Args:
        intensity: measured intensities (e.g. photon counts) ``[...]``, finite.
        i0: the unattenuated intensity (> 0), same units.
        floor: the smallest intensity believed (> 0; e.g. half a photon), so that pixels that recorded nothing
            give a finite line integral ``log(i0 / floor)``.

    Returns:
        line integrals ``[...]``, same dtype.

    **Differentiability:** in ``intensity`` (zero where clamped).

    Example:
        >>> p = intensity_to_line_integrals(torch.tensor([100.0, 0.0]), i0=100.0)   # log(100 / 0.5) = 5.2983
        >>> [round(v, 4) for v in p.tolist()]
        [-0.0, 5.2983]
    """
    check_tensor(intensity, "intensity", floating=True, finite=True)
    i0 = check_number(i0, "i0", lo=0.0, lo_open=True)
    floor = check_number(floor, "floor", lo=0.0, lo_open=True)
    return -torch.log(intensity.clamp_min(floor) / i0)


# ------------------------------------------------------------------------------- exact voxel traversal
@dataclass
class SystemMatrix:
    """A sparse ray-by-voxel matrix in coordinate form: ``p[rows] += weights * density.flatten()[cols]``.

    Attributes:
        rows: ``[nnz]`` int64 ray indices (flattened ``[*batch, H, W]``).
        cols: ``[nnz]`` int64 voxel indices into ``density.flatten()`` (``(k * H + j) * W + i``).
        weights: ``[nnz]`` chord lengths, world units.
        ray_shape: the detector shape ``(*batch, H, W)`` the rows index.
        grid_shape: the voxel grid ``(D, H, W)``.
    """

    rows: torch.Tensor
    cols: torch.Tensor
    weights: torch.Tensor
    ray_shape: Tuple[int, ...]
    grid_shape: Tuple[int, int, int]

    @property
    def num_rays(self) -> int:
        return math.prod(self.ray_shape)


def system_matrix(grid_shape: Tuple[int, int, int], box, camera: Camera,
                  rays_per_chunk: int = 4096) -> SystemMatrix:
    """Chord lengths of every detector ray through every voxel it crosses (Siddon's method, vectorised).

    Every ray's parameters at which it crosses a voxel plane (``W + H + D + 3`` planes) are merged with its
    box entry and exit and sorted; each consecutive pair bounds one voxel, found from the segment's midpoint.

    Args:
        grid_shape: ``(D, H, W)`` voxel counts.
        box: ``[2, 3]`` box corners.
        camera: any :class:`~lumigrad.Camera`.
        rays_per_chunk: rays traversed at once (memory ``~ rays_per_chunk * (D + H + W)``).

    Returns:
        a :class:`SystemMatrix` in ``camera``'s dtype.

    **Differentiability:** none (geometry is detached); :func:`apply_system_matrix` is differentiable in the
    density.
    """
    if (not isinstance(grid_shape, (tuple, list)) or len(grid_shape) != 3
            or not all(isinstance(n, int) and n >= 1 for n in grid_shape)):
        raise ValueError(f"grid_shape must be three positive ints (D, H, W); got {grid_shape!r}")
    if not isinstance(camera, Camera):
        raise TypeError(f"camera must be a lumigrad.Camera; got {type(camera).__name__}")
    box = check_box(box, like=camera.K)
    D, H, W = grid_shape
    with torch.no_grad():
        origins, directions, whole = detector_rays(camera)
        ray_shape = tuple(origins.shape[:-1])
        o, d = origins.reshape(-1, 3), directions.reshape(-1, 3)
        counts = torch.tensor([W, H, D], device=o.device)
        planes = [box[0, a] + (box[1, a] - box[0, a]) * torch.arange(int(counts[a]) + 1, dtype=o.dtype,
                                                                     device=o.device) / int(counts[a])
                  for a in range(3)]
        rows, cols, weights = [], [], []
        for a in range(0, o.shape[0], rays_per_chunk):
            r = _traverse(o[a:a + rays_per_chunk], d[a:a + rays_per_chunk], box, planes, counts, whole)
            rows.append(r[0] + a), cols.append(r[1]), weights.append(r[2])
    return SystemMatrix(torch.cat(rows), torch.cat(cols), torch.cat(weights), ray_shape, (D, H, W))


def _traverse(o, d, box, planes, counts, whole):
    s_in, chord = clip_to_box(o, d, box, whole)
    s_out = s_in + chord
    tiny = torch.finfo(d.dtype).tiny ** 0.5
    d_safe = torch.where(d.abs() < tiny, torch.full_like(d, tiny), d)
    ts = [s_in[:, None], s_out[:, None]] + [(planes[a][None, :] - o[:, a:a + 1]) / d_safe[:, a:a + 1]
                                            for a in range(3)]
    T = torch.cat(ts, 1)
    T = torch.minimum(torch.maximum(T, s_in[:, None]), s_out[:, None]).sort(1).values
    length = T[:, 1:] - T[:, :-1]
    mid = 0.5 * (T[:, 1:] + T[:, :-1])
    p = o[:, None, :] + mid[..., None] * d[:, None, :]
    idx = ((p - box[0]) / (box[1] - box[0]) * counts).floor().long()
    idx = torch.minimum(idx.clamp_min(0), counts - 1)
    keep = (length > 0) & (chord[:, None] > 0)
    flat = (idx[..., 2] * counts[1] + idx[..., 1]) * counts[0] + idx[..., 0]
    ray = torch.arange(o.shape[0], device=o.device)[:, None].expand_as(flat)
    return ray[keep], flat[keep], length[keep]


def apply_system_matrix(A: SystemMatrix, density: torch.Tensor) -> torch.Tensor:
    """Line integrals ``A @ density.flatten()`` reshaped to ``A.ray_shape``.

    Args:
        A: a :func:`system_matrix`.
        density: ``[D, H, W]`` equal to ``A.grid_shape``.

    Returns:
        ``[*A.ray_shape]`` in ``density``'s dtype.

    **Differentiability:** in ``density`` (the adjoint is a scatter-add of the chord lengths: back-projection).
    """
    if tuple(density.shape) != A.grid_shape:
        raise ValueError(f"density must have shape {A.grid_shape} (the system matrix's grid); got "
                         f"{tuple(density.shape)}")
    values = A.weights.to(density.dtype) * density.reshape(-1)[A.cols]
    out = torch.zeros(A.num_rays, dtype=density.dtype, device=density.device).index_add(0, A.rows, values)
    return out.reshape(A.ray_shape)


# ------------------------------------------------------------------------------------- reconstruction
def total_variation(density: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Isotropic total variation of a grid: the mean over voxels of ``sqrt(dx^2 + dy^2 + dz^2 + eps)``.

    Args:
        density: ``[D, H, W]`` with every side >= 2 (forward differences).
        eps: smoothing (> 0) that keeps the gradient finite where the grid is flat.

    Returns:
        a scalar tensor.

    **Differentiability:** smooth for ``eps > 0``.

    Example:
        >>> x = torch.zeros(3, 3, 3, dtype=torch.float64); x[..., 1:] = 1.0   # one step of 1 along x
        >>> round(float(total_variation(x, eps=0.0)), 4)   # half the 2x2x2 forward-difference cells cross it
        0.5
    """
    dz = density[1:, :-1, :-1] - density[:-1, :-1, :-1]
    dy = density[:-1, 1:, :-1] - density[:-1, :-1, :-1]
    dx = density[:-1, :-1, 1:] - density[:-1, :-1, :-1]
    return torch.sqrt(dx * dx + dy * dy + dz * dz + eps).mean()


def reconstruct(projections: torch.Tensor, box, camera: Camera, grid_shape: Tuple[int, int, int], *,
                steps: int = 300, lr: float = 0.05, tv_weight: float = 0.0,
                weights: Optional[torch.Tensor] = None, system: Optional[SystemMatrix] = None,
                return_losses: bool = False):
    """Recover a non-negative density from line integrals by gradient descent (Adam) on a voxel grid.

    Minimises ``sum(w (A sigma - p)^2) / sum(w) + tv_weight * TV(sigma)`` over ``sigma = softplus(theta)``
    (non-negative)
    with ``A`` the exact voxel traversal (:func:`system_matrix`), starting from the constant density that best
    fits the data. ``TV`` is :func:`total_variation`.

    Args:
        projections: measured line integrals ``p = -log(I / I0)`` ``[*camera.batch_shape, H, W]`` (see
            :func:`intensity_to_line_integrals`), finite.
        box: ``[2, 3]`` box corners the grid fills.
        camera: the cameras that took ``projections``.
        grid_shape: ``(D, H, W)`` of the recovered grid.
        steps: Adam iterations (>= 1).
        lr: Adam learning rate on ``theta``.
        tv_weight: weight of the total-variation prior (>= 0; 0 disables it).
        weights: optional per-pixel weights ``w`` (>= 0, finite, same shape as ``projections``; default 1). For
            Poisson counts ``N`` the variance of ``p = -log(N / I0)`` is about ``1 / N``, so ``w = N`` gives the
            statistically weighted least squares.
        system: a precomputed :func:`system_matrix` for these cameras and grid (saves the traversal).
        return_losses: also return the per-step losses.

    Returns:
        ``density [D, H, W]`` (detached), and the list of losses when ``return_losses``.

    Raises:
        ValueError: ``projections`` with NaN / Inf or not the cameras' detector shape, an empty camera set,
            ``tv_weight < 0``.

    **Differentiability:** none (the result is an optimum, returned detached).
    """
    check_tensor(projections, "projections", floating=True, finite=True)
    steps = check_positive_int(steps, "steps")
    lr = check_number(lr, "lr", lo=0.0, lo_open=True)
    tv_weight = check_number(tv_weight, "tv_weight", lo=0.0)
    A = system_matrix(tuple(grid_shape), box, camera) if system is None else system
    if tuple(projections.shape) != A.ray_shape:
        raise ValueError(f"projections must have shape {A.ray_shape} (the cameras' [*batch, H, W]); got "
                         f"{tuple(projections.shape)}")
    p = projections.detach()
    if weights is None:
        w = torch.ones_like(p)
    else:
        check_tensor(weights, "weights", floating=True, finite=True, device=p.device)
        if weights.shape != p.shape or bool((weights < 0).any()) or float(weights.sum()) <= 0:
            raise ValueError(f"weights must be non-negative, not all zero, with the shape of projections "
                             f"{tuple(p.shape)}; got shape {tuple(weights.shape)}")
        w = weights.detach().to(p.dtype) / weights.detach().to(p.dtype).mean()
    with torch.no_grad():
        coverage = apply_system_matrix(A, torch.ones(A.grid_shape, dtype=p.dtype, device=p.device))
        start = float((w * p * coverage).sum() / (w * coverage * coverage).sum().clamp_min(1e-30))
    start = max(start, 1e-3 * float(p.abs().max()) / max(float(coverage.max()), 1e-30), 1e-6)
    theta = torch.full(A.grid_shape, math.log(math.expm1(start)), dtype=p.dtype, device=p.device,
                       requires_grad=True)
    opt = torch.optim.Adam([theta], lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        sigma = torch.nn.functional.softplus(theta)
        loss = (w * (apply_system_matrix(A, sigma) - p).pow(2)).mean()
        if tv_weight > 0:
            loss = loss + tv_weight * total_variation(sigma)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    out = torch.nn.functional.softplus(theta).detach()
    return (out, losses) if return_losses else out
