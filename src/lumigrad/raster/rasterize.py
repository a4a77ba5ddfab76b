"""Hard rasterization: a compiled kernel finds the visible face per pixel, the rest is recomputed from it.

The split is what makes the op differentiable: the kernel's output (face ids) is piecewise constant, while
barycentrics and depth are recomputed from the vertex tensors and the camera by a ray-triangle intersection
(:func:`surface_at_pixels_reference` in PyTorch, the definition; by default the fused kernel of
``kernels/surface.py`` with its hand-written backward), so their gradients reach ``verts``, ``K`` and
``world_to_cam``. Gradients of visibility changes
(silhouettes, occlusion boundaries) come from :func:`lumigrad.antialias`.

Perspective and orthographic cameras share every step; they differ only in the projected vertices handed to
the visibility kernel (and its depth interpolation flag) and in the linear forms of :func:`face_pixel_table`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import List, Literal, Optional, Tuple

import torch

from .._checks import (DeferredChecks, PerVersion, broadcast_batch, check_choice, check_indices,
                       check_positive_int, check_tensor)
from ..cameras.camera import Camera
from ..cameras.projection import K_inverse, lift_orthographic, pow2_scale, project_points, transform_points
from ..kernels.surface import KERNEL_DTYPES, surface_at_covered
from ..kernels.visibility import find_visible, near_plane_flags, project
from ..limits import check_pixel_samples
from .clip import clip_near
from .fragments import Fragments



@dataclass
class PreparedMesh:
    """Validated, flattened inputs shared by rasterize, depth peeling and antialias."""

    verts: torch.Tensor  # [N, V, 3] world positions (differentiable)
    faces: torch.Tensor  # [F, 3] int64
    faces_i32: torch.Tensor  # [F, 3] int32
    K: torch.Tensor  # [N, 3, 3]
    world_to_cam: torch.Tensor  # [N, 4, 4]
    camera: Camera
    batch_shape: torch.Size
    verts_cam: torch.Tensor  # [N, V, 3] camera-frame vertices, computed once (differentiable)
    checks: DeferredChecks = None  # value checks still on the device, read with the visibility kernel's count

    @property
    def num_views(self) -> int:
        return self.verts.shape[0]

    @property
    def orthographic(self) -> bool:
        return self.camera.projection == "orthographic"


#: The largest camera-frame coordinate (``|x|``, ``|y|`` or ``|z|`` of ``R x + t``) the raster ops accept.
#: Beyond it the float64 edge functions of the kernels (products of three coordinates) and the float32 depth
#: buffer could overflow; within it every barycentric, depth and edge position is finite for finite input.
MAX_CAMERA_COORD = 1e15


def prepare_mesh(verts, faces, camera, *, layers: int = 1, op: str = "rasterize", layers_name: str = "",
                 checks: Optional[DeferredChecks] = None, faces_checked: bool = False) -> PreparedMesh:
    """Validate ``verts``, ``faces`` and ``camera`` and flatten the batch dims to one view axis.

    ``layers`` multiplies the views x H x W pixel samples checked against the pixel budget (``op`` and
    ``layers_name``, e.g. ``"faces_per_pixel=16"``, name them in the message).

    Value checks (finite vertices within :data:`MAX_CAMERA_COORD` of the camera) are read at once, a host
    sync on CUDA, unless ``checks`` is given: then they join it and ride along with the visibility kernel's
    own read (:func:`rasterize_prepared` reads them; the kernels skip non-finite triangles until then).
    ``faces_checked`` skips the index-range check, for a face table built from tables already checked (the
    merged table of a scene).
    """
    if not isinstance(camera, Camera):
        raise TypeError(f"camera must be a lumigrad.Camera; got {type(camera).__name__}")
    if camera.distortion is not None:
        raise ValueError("camera has lens distortion, which the rasterizer does not apply yet; rasterize with a "
                         "pinhole camera (distortion=None)")
    camera.require_pinhole(op)
    check_tensor(verts, "verts", trailing=(None, 3), floating=True)
    if camera.device != verts.device:
        raise ValueError(f"camera is on {camera.device} but verts are on {verts.device}; move them to one device")
    check_tensor(faces, "faces", trailing=(None, 3), max_dims=2, floating=False, device=verts.device)
    if verts.shape[-2] == 0:
        raise ValueError("verts is empty: the mesh has no vertices")
    if faces.shape[0] == 0:
        raise ValueError("faces is empty: the mesh has no faces")
    batch = broadcast_batch(verts.shape[:-2], "verts", camera.batch_shape, "camera")
    n = 1
    for size in batch:
        n *= size
    if n == 0:
        raise ValueError(f"verts {tuple(verts.shape)} and the camera (batch {tuple(camera.batch_shape)}) give an "
                         f"empty batch {tuple(batch)}; give at least one view")
    layer_text = f"{layers_name} x " if layers_name else ""
    check_pixel_samples(n * camera.height * camera.width * layers,
                        f"{op}: {layer_text}{n} view(s) of width x height {camera.width}x{camera.height} pixels")
    if not faces_checked:
        check_indices(faces, "faces", verts.shape[-2])
    verts_flat = verts.expand(batch + verts.shape[-2:]).reshape(n, -1, 3)
    K = camera.K.expand(batch + (3, 3)).reshape(n, 3, 3)
    w2c = camera.world_to_cam.expand(batch + (4, 4)).reshape(n, 4, 4)
    if K.dtype != verts.dtype:
        K = K.to(verts.dtype)
        w2c = w2c.to(verts.dtype)
    verts_cam = transform_points(verts_flat, w2c)
    pending = DeferredChecks() if checks is None else checks
    if verts_cam.device.type != "meta":
        # NaN propagates through amax, so one comparison catches NaN / Inf and too distant coordinates.
        pending.add(~(verts_cam.detach().abs().amax() <= MAX_CAMERA_COORD),
                    functools.partial(_raise_coordinates, verts, verts_cam))
    if checks is None:
        pending.flush()
    faces64 = faces.long()
    return PreparedMesh(verts_flat, faces64, faces64.to(torch.int32).contiguous(), K, w2c, camera, batch, verts_cam,
                        pending)


def _raise_coordinates(verts: torch.Tensor, verts_cam: torch.Tensor) -> None:
    """The error for NaN / Inf in ``verts`` or camera-frame coordinates beyond :data:`MAX_CAMERA_COORD`."""
    largest = float(verts_cam.detach().abs().amax())
    check_tensor(verts, "verts", finite=True)
    raise ValueError(f"verts lie up to {largest:.3g} from the camera (largest camera-frame coordinate of "
                     f"world_to_cam @ verts), beyond the {MAX_CAMERA_COORD:.0e} the rasterizer supports; express "
                     "the scene in larger units or move the camera closer")


@torch.no_grad()
def _visibility(mesh: PreparedMesh, cull: str, prev: Optional[Fragments]):
    """Run the visibility kernel; return face ids and kernel depth, both ``[N, H, W]``, and the vertices' powers
    of two ``[N V]`` that the surface kernels take (made by the projection kernel on the way)."""
    cam = mesh.camera
    near, far = cam.near, cam.far
    N, V, _ = mesh.verts_cam.shape
    F = mesh.faces.shape[0]
    projection = cam.projection
    proj, vertex_scale = project(mesh.verts_cam, mesh.K, mesh.orthographic, return_vertex_scale=True)
    behind = proj[..., 2] < near  # [N, V]
    if prev is None:  # read with the kernel's tile count (depth peeling's later layers need not ask again)
        all_behind = behind.all(dim=-1)
        mesh.checks.add(all_behind.any(), functools.partial(_raise_all_behind, all_behind, near))
    # One host read (where the per-face clipping list used to be sized): only when a vertex lies before the near
    # plane do faces need flags; those with every corner in front are drawn from proj, crossing ones clipped here.
    any_behind = bool(behind.any())
    face_skip = near_plane_flags(proj, mesh.faces_i32, near) if any_behind else None
    crossing = (face_skip == 2).nonzero()[:, 0] if any_behind else None
    if crossing is not None and crossing.numel():
        view = crossing // F
        face = crossing % F
        corners = mesh.verts_cam.detach()[view[:, None], mesh.faces[face]].double()  # [M, 3, 3]
        clipped, src = clip_near(corners, near)
        cuv = project_points(clipped, mesh.K[view[src]].double(), projection=projection)
        extra = torch.cat([cuv, clipped[..., 2:]], dim=-1).contiguous()
        extra_view = view[src].to(torch.int32).contiguous()
        extra_face = face[src].to(torch.int32).contiguous()
    else:
        extra = proj.new_zeros(0, 3, 3)
        extra_view = extra_face = torch.zeros(0, dtype=torch.int32, device=proj.device)
    prev_pair = None if prev is None else (prev.face_ids.reshape(N, cam.height, cam.width),
                                            prev.zbuf.reshape(N, cam.height, cam.width))
    face_ids, zbuf = find_visible(proj, mesh.faces_i32, face_skip, extra, extra_view, extra_face, cam.width,
                                  cam.height, near, far, cull, prev_pair, affine_depth=mesh.orthographic,
                                  checks=mesh.checks)
    return face_ids, zbuf, vertex_scale


def _raise_all_behind(all_behind: torch.Tensor, near: float) -> None:
    view = int(all_behind.nonzero()[0, 0])
    raise ValueError(f"every vertex is behind the camera's near plane (z < {near}) in view {view}; "
                     "world_to_cam maps world to an OpenCV camera frame looking along +z")


def face_pixel_table(mesh: PreparedMesh, keys: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-face linear forms in pixel coordinates: ``[K, 10]`` ``(M [3, 3] row-major, v0 . n)`` for a
    perspective camera, ``[K, 12]`` ``(M [3, 3], D [3])`` for an orthographic one, and ``[K]`` scales.

    The forms are those of each face's corners divided by its scale, a power of two (see :func:`pow2_scale`);
    the depth ``D p / S`` (``v0 . n / S``) must be multiplied by it.

    ``keys [K]`` selects (view, face) pairs as ``view * F + face``. With camera-frame corners ``v0, v1, v2``,
    ``e1 = v1 - v0``, ``e2 = v2 - v0``, the forms ``n = e1 x e2``, ``a = v0 x e2``, ``b = e1 x v0`` (edge
    vectors keep them free of cancellation, as in Moller-Trumbore) are stacked as rows and multiplied by
    ``K^-1``, so that for the homogeneous pixel ``p = (u, v, 1)`` the ray ``d = K^-1 p`` gives
    ``M p = (d . n, d . a, d . b)``.

    Orthographic: with ``K^-1 p = (x, y, 1)`` the pixel's ray starts at ``(x, y, 0)`` and runs along +z. The
    same forms built from the corners lifted to ``z = 1`` (:func:`~lumigrad.cameras.projection.lift_orthographic`)
    are then the 2D (xy-plane) edge functions: ``n -> (0, 0, n_z)``, ``a -> (-e2_y, e2_x, (v0 x e2)_z)``,
    ``b -> (e1_y, -e1_x, (e1 x v0)_z)``, so the barycentrics are affine in ``p``. Depth comes from the face's
    plane ``n . (x, y, z) = n . v0`` (true corners): ``z = D p / S`` with ``D = (-n_x, -n_y, n . v0) K^-1``.
    """
    F = mesh.faces.shape[0]
    V = mesh.verts.shape[1]
    view = keys // F
    corners = mesh.faces[keys - view * F] + (view * V)[:, None]  # [K, 3]
    tri = mesh.verts_cam.reshape(-1, 3)[corners.reshape(-1)].reshape(-1, 3, 3)
    # Each triangle is divided by a power of two s >= its largest coordinate (exact in binary floating point,
    # so ordinary scenes give bit-identical values): the products of up to three coordinates below cannot
    # overflow (float32 would at ~1e12, giving NaN from finite input). The forms are homogeneous, so ratios
    # (barycentrics, their derivatives) are unchanged and the depth is ``s`` times the scaled one.
    scale = pow2_scale(tri.detach().abs().amax((-1, -2)))  # [K]
    tri = tri / scale[:, None, None]
    true_tri = tri
    if mesh.orthographic:
        tri = lift_orthographic(tri)
    v0 = tri[:, 0]
    e1 = tri[:, 1] - v0
    e2 = tri[:, 2] - v0
    n = torch.linalg.cross(e1, e2)
    forms = torch.stack([n, torch.linalg.cross(v0, e2), torch.linalg.cross(e1, v0)], -2)  # [K, 3, 3]
    K_inv = K_inverse(mesh.K)
    K_inv = K_inv if K_inv.shape[0] == 1 else K_inv[view]
    if mesh.orthographic:
        # The pixel's ray origin (x, y) = rows 0, 1 of K^-1 p is scaled with the lifted corners.
        row_scale = torch.stack([1 / scale, 1 / scale, torch.ones_like(scale)], -1)  # [K, 3]
        K_inv = K_inv * row_scale[:, :, None]
        t0 = true_tri[:, 0]
        n3 = torch.linalg.cross(true_tri[:, 1] - t0, true_tri[:, 2] - t0)
        depth_form = torch.cat([-n3[:, :2], (t0 * n3).sum(-1, keepdim=True)], -1)
        rows = (torch.cat([forms, depth_form[:, None]], -2) @ K_inv).reshape(-1, 12)  # [K, 4, 3] -> [K, 12]
        return rows, scale
    M = forms @ K_inv
    return torch.cat([M.reshape(-1, 9), (v0 * n).sum(-1, keepdim=True)], -1), scale


#: Whether :func:`surface_at_pixels` runs the fused kernels (``kernels/surface.py``, explicit backward) or
#: their PyTorch twin :func:`surface_at_pixels_reference` (autograd through the recomputation). The tests
#: compare the two; the reference is the definition.
FUSED_SURFACE = True


def surface_at_pixels(mesh: PreparedMesh, covered: torch.Tensor, face_ids: torch.Tensor, with_derivs: bool,
                      fused: Optional[bool] = None, vertex_scale: Optional[torch.Tensor] = None):
    """Differentiable barycentrics ``[P, 3]``, depth ``[P]`` and (``with_derivs``) barycentric derivatives
    ``[P, 3, 2]`` of the visible faces at the centres of the covered pixels ``covered [P]`` (flat indices into
    ``face_ids [N, H, W]``), as :func:`surface_at_pixels_reference` defines them.

    ``fused`` (default :data:`FUSED_SURFACE`) picks the fused kernels with their explicit backward; floating
    dtypes they are not compiled for fall back to the reference. ``vertex_scale``: the fused kernels' per-vertex
    powers of two when the caller has them (:func:`_visibility` does).
    """
    fused = FUSED_SURFACE if fused is None else fused
    if fused and mesh.verts_cam.dtype in KERNEL_DTYPES:
        return surface_at_covered(mesh.verts_cam, _kinv_rows(mesh), mesh.faces_i32, covered,
                                  face_ids.reshape(-1).contiguous(), mesh.camera.height, mesh.camera.width,
                                  mesh.orthographic, with_derivs, vertex_scale)
    return surface_at_pixels_reference(mesh, covered, face_ids.reshape(-1)[covered].long(), with_derivs)


def _kinv_rows(mesh: PreparedMesh) -> torch.Tensor:
    """``K^-1`` of every view, ``[N, 3, 3]`` contiguous in ``mesh.K``'s dtype. A camera whose ``K`` takes no
    gradient here gets it computed once per version of ``K`` (a fixed camera, frame after frame)."""
    base = mesh.camera.K
    key = (mesh.num_views, mesh.K.dtype)
    fixed = not (base.requires_grad and torch.is_grad_enabled())
    if fixed:
        kinv = _FIXED_KINV.recall(base, key)
        if kinv is not None:
            return kinv
    kinv = K_inverse(mesh.K)
    if kinv.shape[0] != mesh.num_views:
        kinv = kinv.expand(mesh.num_views, 3, 3)
    kinv = kinv.contiguous()
    if fixed and not kinv.is_inference():  # an inference tensor cannot be saved for a later backward
        _FIXED_KINV.keep(base, key, kinv)
    return kinv


_FIXED_KINV = PerVersion(capacity=8)  # K^-1 of fixed cameras' K


def surface_at_pixels_reference(mesh: PreparedMesh, covered: torch.Tensor, face: torch.Tensor, with_derivs: bool):
    """Differentiable barycentrics ``[P, 3]`` and depth ``[P]`` of faces ``face [P]`` at pixel centres: the
    PyTorch definition that the fused kernels (:func:`surface_at_pixels`) reproduce.

    With the forms of :func:`face_pixel_table` and the pixel centre ``p = (u, v, 1)``:
    ``(S, A, B) = M p``, ``bary_1 = -A / S``, ``bary_2 = -B / S``, ``bary_0 = 1 - bary_1 - bary_2`` and
    ``depth = (v0 . n) / S`` (the ray ``K^-1 p`` has z = 1, so its parameter is the camera-frame depth).
    The screen-space derivatives follow from the columns of ``M``: ``d(S, A, B)/du = M[:, 0]``.
    Orthographic: the same, with ``depth = D p / S`` (then ``S`` is constant, so bary and depth are affine).
    """
    cam = mesh.camera
    H, W = cam.height, cam.width
    view = covered // (H * W)
    pix = covered - view * (H * W)
    # Forms only for the (view, face) pairs that are visible somewhere, then one row per pixel.
    key = view * mesh.faces.shape[0] + face
    seen = torch.zeros(mesh.num_views * mesh.faces.shape[0], dtype=torch.bool, device=key.device)
    seen[key] = True
    seen_keys = seen.nonzero()[:, 0]
    slot = torch.empty(seen.shape[0], dtype=torch.long, device=key.device)
    slot[seen_keys] = torch.arange(seen_keys.numel(), device=key.device)
    table, scale = face_pixel_table(mesh, seen_keys)
    rows = table.index_select(0, slot[key])  # [P, 10] ([P, 12] orthographic)
    scale = scale.index_select(0, slot[key])  # [P], the power of two each face's forms were divided by
    M = rows[:, :9].reshape(-1, 3, 3)
    row = pix // W
    u = (pix - row * W).to(M.dtype)[:, None] + 0.5
    v = row.to(M.dtype)[:, None] + 0.5
    SAB = M[:, :, 0] * u + M[:, :, 1] * v + M[:, :, 2]  # M (u, v, 1): [P, 3] (S, A, B)
    S = SAB[:, 0]
    S = torch.where(S.abs() > 0, S, torch.ones_like(S))  # zero-area faces are never drawn; guard anyway
    b12 = -SAB[:, 1:] / S[:, None]
    bary = torch.cat([1 - b12.sum(-1, keepdim=True), b12], -1)
    if rows.shape[1] == 12:  # orthographic: the depth numerator is a linear form too
        depth = (rows[:, 9:10] * u + rows[:, 10:11] * v + rows[:, 11:12])[:, 0] / S * scale
    else:
        depth = rows[:, 9] / S * scale
    derivs = None
    if with_derivs:
        # d b_k / d(u, v) = -(M[k, :2] + b_k M[0, :2]) / S for k = 1, 2; b_0 takes minus their sum.
        g12 = -(M[:, 1:, :2] + b12[:, :, None] * M[:, :1, :2]) / S[:, None, None]  # [P, 2, 2]
        derivs = torch.cat([-g12.sum(1, keepdim=True), g12], 1)  # [P, 3, 2]
    return bary, depth, derivs


def _fragments(mesh: PreparedMesh, face_ids, zbuf, with_derivs: bool,
               vertex_scale: Optional[torch.Tensor] = None) -> Fragments:
    shape = mesh.batch_shape + face_ids.shape[-2:]
    flat = face_ids.reshape(-1)
    covered = (flat >= 0).nonzero()[:, 0]
    bary, depth, derivs = surface_at_pixels(mesh, covered, face_ids, with_derivs, vertex_scale=vertex_scale)
    return Fragments(face_ids.reshape(shape), covered, bary, depth, derivs, zbuf.reshape(shape),
                     num_faces=mesh.faces.shape[0])


def rasterize(
    verts: torch.Tensor,
    faces: torch.Tensor,
    camera: Camera,
    *,
    cull: Literal["none", "back", "front"] = "none",
    return_bary_derivs: bool = False,
) -> Fragments:
    """Rasterize a triangle mesh: find the visible face at every pixel centre.

    Args:
        verts: vertex positions, ``[..., V, 3]``, float, world space. Leading dims broadcast with the
            camera's batch dims (one mesh seen by N cameras, or N meshes).
        faces: ``[F, 3]`` integer vertex indices, counter-clockwise front faces.
        camera: a :class:`lumigrad.Camera`, perspective or orthographic (``near`` clips geometry, ``far``
            discards it; for both projections that is camera-frame ``z``).
        cull: ``"back"`` skips faces seen from behind, ``"front"`` the others; ``"none"`` draws both.
        return_bary_derivs: also compute ``bary_derivs``, the screen-space derivatives of the barycentrics
            that :func:`interpolate` needs for attribute derivatives (texture mip-level selection).

    Returns:
        :class:`Fragments` with ``face_ids [..., H, W]`` (-1 background), ``depth [..., H, W, 1]`` (camera-frame
        z, 0 on background; the shape of :func:`lumigrad.render_geometry`'s depth, see docs/conventions.md),
        ``bary [..., H, W, 3]`` and optionally ``bary_derivs [..., H, W, 3, 2]``.

    Triangles crossing the near plane are clipped (the visible part is drawn); coverage follows a
    watertight tie rule, so a mesh without holes shows none. Ties in depth go to the lower face index.
    Cost: binning is O(F + tiles touched), the depth test O(pixels covered x overdraw).

    Raises:
        TypeError / ValueError: wrong shapes or dtypes, NaN / Inf, empty meshes or batches, out-of-range
            face indices, mixed devices, a distorted camera, and camera-frame coordinates (``world_to_cam``
            applied to ``verts``) beyond ``MAX_CAMERA_COORD = 1e15`` in magnitude. Within that bound every
            output is finite for finite input, in float32 too: each triangle is rescaled by a power of two
            before the products of its coordinates are formed.
        lumigrad.limits.BudgetError: views x H x W exceeds the pixel budget (checked before allocating).

    **Differentiability:** ``face_ids`` is piecewise constant and carries no gradient. ``bary``, ``depth`` and
    ``bary_derivs`` are differentiable w.r.t. ``verts`` and the camera's ``K`` and ``world_to_cam`` for a
    fixed visibility: they are recomputed by intersecting each pixel's ray with its face (rays
    through the camera centre, or parallel to +z for an orthographic camera, whose barycentrics and depth
    are affine in the pixel position).
    Gradients due to visibility changes at silhouette and occlusion edges come from :func:`antialias`.
    Zero-area faces are never drawn and get zero gradients.

    Example:
        >>> cam = Camera.look_at([0., 0., -2.], [0., 0., 0.], width=8, height=8)
        >>> frags = rasterize(torch.tensor([[-1., -1, 0], [1, -1, 0], [0, 1, 0]]), torch.tensor([[0, 1, 2]]), cam)
        >>> int(frags.face_ids[4, 4]), float(frags.depth[4, 4, 0]), tuple(frags.depth.shape)
        (0, 2.0, (8, 8, 1))
    """
    check_choice(cull, "cull", ("none", "back", "front"))
    return rasterize_prepared(prepare_mesh(verts, faces, camera, checks=DeferredChecks()), cull, return_bary_derivs)


def rasterize_prepared(mesh: PreparedMesh, cull: str = "none", return_bary_derivs: bool = False) -> Fragments:
    """:func:`rasterize` of a mesh already validated by :func:`prepare_mesh`, for pipelines such as
    :func:`lumigrad.render` that validate once and then draw: no checks of its own, and the value checks
    still pending on ``mesh.checks`` are read with the visibility kernel's tile count (no extra host sync)."""
    return peel_prepared(mesh, None, cull, return_bary_derivs)


def peel_prepared(mesh: PreparedMesh, prev: Optional[Fragments], cull: str = "none",
                  return_bary_derivs: bool = False) -> Fragments:
    """The layer of a prepared mesh behind ``prev`` (the nearest fragment strictly behind it per pixel, ties
    broken by face index; background where ``prev`` is background), or the first layer for ``prev=None``:
    one step of :func:`depth_peel`, unchecked as :func:`rasterize_prepared`."""
    face_ids, zbuf, vertex_scale = _visibility(mesh, cull, prev)
    return _fragments(mesh, face_ids, zbuf, return_bary_derivs, vertex_scale)


def depth_peel(
    verts: torch.Tensor,
    faces: torch.Tensor,
    camera: Camera,
    num_layers: int,
    *,
    cull: Literal["none", "back", "front"] = "none",
    return_bary_derivs: bool = False,
) -> List[Fragments]:
    """Rasterize the first ``num_layers`` surfaces along each pixel ray, nearest first.

    Layer k holds, per pixel, the nearest fragment strictly behind layer k-1 (ties broken by face index),
    so every face crossing a pixel centre appears in exactly one layer until the layers run out.
    Arguments, errors and differentiability as in :func:`rasterize`; the pixel budget counts
    ``num_layers x views x H x W``.
    """
    check_positive_int(num_layers, "num_layers")
    check_choice(cull, "cull", ("none", "back", "front"))
    mesh = prepare_mesh(verts, faces, camera, layers=num_layers, op="depth_peel",
                        layers_name=f"num_layers={num_layers}", checks=DeferredChecks())
    layers: List[Fragments] = []
    prev = None
    for _ in range(num_layers):
        prev = peel_prepared(mesh, prev, cull, return_bary_derivs)
        layers.append(prev)
    return layers
