"""Area lights: emissive triangle meshes as pure, differentiable PyTorch functions (no shadows).

An area light is a triangle mesh ``(verts, faces)`` that emits a uniform radiance ``L_e`` (per face or for the
whole mesh) from the **front** face of each triangle: the side its normal
``(v1 - v0) x (v2 - v0)`` points to, i.e. the side from which the vertices appear counter-clockwise.
``L_e`` is in the units of a glTF material's ``emissive_factor`` (W/(m^2 sr)-like radiance). The radiance it
reflects at a shading point ``x`` with normal ``n_x`` is the integral over the lamp::

    Lo(x) = integral f(wi, wo) L_e cos_x cos_y / d^2 dA(y),   cos_x = n_x . wi,  cos_y = max(-n_y . wi, 0)

with ``wi = (y - x) / d`` and ``d = |y - x|``. :func:`area_light` turns it into a sum over fixed sample points
``y_k`` (:func:`area_light_samples`), one :class:`~lumigrad.shading.LightSample` per point, so
``shade_direct(..., lights=area_light(...))`` evaluates it with the same code as punctual lights, and a ray
tracer can reuse the samples (``distance`` is the shadow-ray length). :func:`polygon_irradiance` is the exact
irradiance of a planar polygonal lamp (Lambert's formula), the float64 reference the quadrature is tested
against.
"""

from __future__ import annotations

import math
from typing import List, NamedTuple

import torch

from .._checks import check_mesh, check_positive_int, check_tensor
from ..limits import check_pixel_samples
from .lights import MIN_LIGHT_DISTANCE, LightSample, towards_point

__all__ = ["AreaLightPoints", "area_light", "area_light_samples", "area_light_unchecked", "check_samples_per_face", "polygon_irradiance"]


class AreaLightPoints(NamedTuple):
    """Quadrature points on an emissive triangle mesh, ``S`` per face, face-major (point ``f * S + s``).

    Attributes:
        points: ``[F * S, 3]`` sample positions, world space.
        normals: ``[F * S, 3]`` unit front-face normals ``(v1 - v0) x (v2 - v0)`` normalised; zero for a
            zero-area face.
        areas: ``[F * S]`` quadrature weights, the face's area divided by ``S`` (they sum to the mesh area).
    """

    points: torch.Tensor
    normals: torch.Tensor
    areas: torch.Tensor


def area_light_samples(verts: torch.Tensor, faces: torch.Tensor, *, samples_per_face: int = 4) -> AreaLightPoints:
    """Place ``samples_per_face`` deterministic, stratified quadrature points on every triangle.

    With ``S = samples_per_face = n^2``, each triangle is cut into ``n^2`` congruent sub-triangles by ``n - 1``
    lines parallel to each edge (``n = 2^k`` is ``k`` rounds of midpoint subdivision), and each point is the
    centroid of one sub-triangle, with weight ``area / S``. In barycentrics ``y = v0 + u (v1 - v0) + v (v2 - v0)``::

        "up" sub-triangles,   i, j >= 0, i + j <= n - 1:   (u, v) = ((i + 1/3) / n, (j + 1/3) / n)
        "down" sub-triangles, i, j >= 0, i + j <= n - 2:   (u, v) = ((i + 2/3) / n, (j + 2/3) / n)

    The rule integrates linear functions exactly (the mean of the points of a face is its centroid) and
    smooth ones with an error ``O(1 / S)`` (composite centroid rule), without randomness, so renders and
    gradients are reproducible. Any perfect square is accepted (1, 4, 9, 16, ...), not only powers of 4.

    Args:
        verts: lamp vertex positions, ``[V, 3]``, float, world space.
        faces: triangles, ``[F, 3]``, integer indices into ``verts``, ``F >= 1``; front face counter-clockwise.
        samples_per_face: points per triangle ``S``, a positive perfect square.

    Returns:
        :class:`AreaLightPoints` ``(points [F*S, 3], normals [F*S, 3], areas [F*S])`` in ``verts``' dtype and
        device, face-major.

    Raises:
        ValueError: wrong shapes, NaN/Inf ``verts``, empty ``faces``, out-of-range indices or a
            ``samples_per_face`` that is not a perfect square.
        TypeError: non-tensor inputs, integer ``verts``, float ``faces`` or a non-int ``samples_per_face``.

    **Differentiability:** ``points`` are linear in ``verts``; ``normals`` and ``areas`` are smooth in ``verts``
    for faces of non-zero area. A zero-area face gets ``normal = 0``, ``area = 0`` and zero (never NaN)
    gradients through them. ``faces`` and ``samples_per_face`` are discrete.

    Example: one right triangle with legs 3, one point at its centroid::

        >>> verts = torch.tensor([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 3.0, 0.0]])
        >>> p = area_light_samples(verts, torch.tensor([[0, 1, 2]]), samples_per_face=1)
        >>> p.points.tolist(), p.normals.tolist(), p.areas.tolist()
        ([[1.0, 1.0, 0.0]], [[0.0, 0.0, 1.0]], [4.5])
    """
    check_mesh(verts, faces, what="an area light")
    points, vector_area = _quadrature(verts, faces, samples_per_face)
    sq = (vector_area * vector_area).sum(-1)
    nonzero = sq > 0
    # Double where: a zero-area face must not take the (infinite) gradient of sqrt at 0.
    norm = torch.where(nonzero, sq, torch.ones_like(sq)).sqrt()
    normals = torch.where(nonzero[:, None], vector_area / norm[:, None], torch.zeros_like(vector_area))
    areas = torch.where(nonzero, norm, torch.zeros_like(norm))
    return AreaLightPoints(points, normals, areas)


def area_light(
    x: torch.Tensor,
    verts: torch.Tensor,
    faces: torch.Tensor,
    radiance: torch.Tensor,
    *,
    samples_per_face: int = 4,
    two_sided: bool = False,
    min_distance: float = MIN_LIGHT_DISTANCE,
) -> List[LightSample]:
    """Light shading points with an emissive triangle mesh: one light sample per quadrature point.

    For each point ``y`` of :func:`area_light_samples` with unit normal ``n_y`` and weight ``dA``, with
    ``v = y - x`` and ``d = max(|v|, min_distance)``::

        wi = v / d,     L = radiance * max(-n_y . wi, 0) * dA / d^2,     distance = d

    (``|n_y . wi|`` instead of the clamp when ``two_sided``). A BRDF ``f`` then reflects
    ``Lo = sum_k f(wi_k, wo) L_k max(n_x . wi_k, 0)``, the quadrature of
    ``integral f L_e cos_x cos_y / d^2 dA`` over the lamp: pass the list to
    :func:`lumigrad.shading.shade_direct`, alone or concatenated with punctual lights. The error of the
    quadrature falls like ``1 / samples_per_face`` for shading points farther from the lamp than the size of
    its triangles (irradiance under a square lamp of 2 triangles, at a height equal to its side: relative
    errors 1.9e-1, 3.3e-2, 8.0e-3, 2.0e-3 for S = 1, 4, 16, 64; at twice that height 5.3e-2, 1.2e-2, 3.0e-3,
    7.4e-4); near a lamp (closer than a triangle's size) use more samples or subdivide the mesh, and
    inside ``min_distance`` of a sample the clamp bounds its contribution (see
    :func:`lumigrad.shading.point_light`).

    Cost: returns ``F * S`` samples of ``[..., 3 + C + 1]`` values each, so ``O(points x F x S)`` memory (the
    autograd graph of this function holds a small multiple of it). ``shade_direct`` recomputes each light
    sample's BRDF in its backward pass (``torch.utils.checkpoint``), so shading adds the intermediates of one
    sample at a time, not of all of them.

    Args:
        x: shading points, ``[..., 3]``, float, world space (a G-buffer ``[..., H, W, 3]`` or hit points).
        verts: lamp vertex positions, ``[V, 3]``, float, world space.
        faces: lamp triangles, ``[F, 3]``, integer, ``F >= 1``; each emits from its counter-clockwise front.
        radiance: emitted radiance, ``[C]`` for the whole lamp or ``[F, C]`` per face, float, ``>= 0``
            (glTF ``emissive_factor`` units, times ``KHR_materials_emissive_strength`` if any).
        samples_per_face: quadrature points per triangle, a positive perfect square (1, 4, 9, 16, ...).
        two_sided: emit from both faces of every triangle.
        min_distance: lower clamp on ``d`` (scene units), as in :func:`lumigrad.shading.point_light`.

    Returns:
        A list of ``F * S`` :class:`~lumigrad.shading.LightSample` ``(wi [..., 3], L [..., C], distance [...])``
        where ``...`` are ``x``'s batch dims, face-major (sample ``f * S + s`` lies on face ``f``).

    Raises:
        ValueError: wrong shapes, NaN/Inf values, negative ``radiance``, empty ``faces``, out-of-range indices,
            a ``samples_per_face`` that is not a perfect square or a non-positive ``min_distance``.
        TypeError: non-tensor inputs or wrong dtypes.

    **Differentiability:** smooth in ``x``, ``verts`` (through the sample positions, the normals and the face
    areas) and ``radiance``, except where a sample sees the lamp edge-on (``n_y . wi = 0``, the kink of the
    one-sided clamp, or of ``|.|`` when ``two_sided``). The quadrature is deterministic, so these are the exact
    gradients of the quadrature, which converge to those of the integral as ``S`` grows. Zero-area faces
    contribute 0 with finite gradients (``L`` uses the vector area ``(v1 - v0) x (v2 - v0) / (2 S)`` directly,
    no normalisation). No visibility: occluders between ``x`` and the lamp are ignored (deferred shading).

    Example: a triangle of area 4.5 at height 1 facing down (-z), one sample at its centroid ``(1, 1, 1)``,
    straight above ``x``: ``L = 2 * 1 * 4.5 / 1^2``::

        >>> verts = torch.tensor([[0.0, 0.0, 1.0], [0.0, 3.0, 1.0], [3.0, 0.0, 1.0]])
        >>> s = area_light(torch.tensor([1.0, 1.0, 0.0]), verts, torch.tensor([[0, 1, 2]]), torch.tensor([2.0]),
        ...                samples_per_face=1)
        >>> len(s), s[0].wi.tolist(), s[0].L.tolist(), s[0].distance.item()
        (1, [0.0, 0.0, 1.0], [9.0], 1.0)
    """
    check_tensor(x, "x", trailing=(3,), floating=True, finite=True)
    check_mesh(verts, faces, device=x.device, what="an area light")
    F = faces.shape[0]
    check_tensor(radiance, "radiance", floating=True, finite=True, device=x.device)
    if radiance.dim() not in (1, 2) or (radiance.dim() == 2 and radiance.shape[0] != F):
        raise ValueError(f"radiance must have shape [C] or [F, C] with F = {F} faces; got {tuple(radiance.shape)}")
    if bool((radiance < 0).any()):
        raise ValueError(f"radiance must be non-negative; got minimum {float(radiance.detach().min())}")
    if not isinstance(two_sided, bool):
        raise TypeError(f"two_sided must be a bool; got {type(two_sided).__name__}")
    check_positive_int(samples_per_face, "samples_per_face")
    return area_light_unchecked(x, verts, faces, radiance, samples_per_face=samples_per_face,
                                two_sided=two_sided, min_distance=min_distance)


def area_light_unchecked(x: torch.Tensor, verts: torch.Tensor, faces: torch.Tensor, radiance: torch.Tensor, *,
                         samples_per_face: int = 4, two_sided: bool = False,
                         min_distance: float = MIN_LIGHT_DISTANCE) -> List[LightSample]:
    """:func:`area_light` on validated inputs (an :class:`~lumigrad.scene.AreaLight` checked when it was
    built): no value reads; the pixel budget is still enforced (it depends on ``x``'s size)."""
    F = faces.shape[0]
    shading_points = x.numel() // 3
    # Every (light sample, shading point) pair is allocated: budget them before the quadrature.
    check_pixel_samples(F * samples_per_face * max(shading_points, 1),
                        f"area_light: samples_per_face={samples_per_face} x {F} faces x {shading_points} shading "
                        "points")
    points, vector_area = _quadrature(verts, faces, samples_per_face)
    N = points.shape[0]
    # Sample-major layout [N, ..., c]: each light sample is a contiguous slice of the batch.
    lead = (N,) + (1,) * (x.dim() - 1)
    wi, d = towards_point(x, points.reshape(lead + (3,)), min_distance)
    cos_da = -(vector_area.reshape(lead + (3,)) * wi).sum(-1)  # max(-n_y . wi, 0) dA, unclamped
    cos_da = cos_da.abs() if two_sided else cos_da.clamp_min(0.0)
    per_point = radiance.expand(F, radiance.shape[-1]).repeat_interleave(N // F, dim=0)
    L = per_point.reshape(lead + (radiance.shape[-1],)) * (cos_da / (d * d))[..., None]
    return [LightSample(*s) for s in zip(wi.unbind(0), L.unbind(0), d.unbind(0))]


def polygon_irradiance(
    x: torch.Tensor,
    normal: torch.Tensor,
    polygon: torch.Tensor,
    radiance: torch.Tensor,
    *,
    two_sided: bool = False,
) -> torch.Tensor:
    """Return the exact irradiance at ``x`` from a uniformly emitting planar polygon (Lambert's formula).

    With ``a_i = v_i - x`` (indices mod ``K``), ``theta_i = angle(a_i, a_{i+1})``,
    ``g_i = (a_i x a_{i+1}) / |a_i x a_{i+1}|`` and ``n`` the unit normal at ``x``::

        s = 1/2 sum_i theta_i (g_i . n)                  (the projected solid angle, signed)
        E = radiance * max(-s, 0)     (one-sided)        E = radiance * |s|     (two_sided)

    The sign: seen from a point in front of the polygon (on the side of its normal
    ``(v1 - v0) x (v2 - v0)``) the vertices turn counter-clockwise and ``s < 0``, so a one-sided lamp, like
    :func:`area_light`, lights only points in front of it. ``E`` is what
    ``sum_k L_k max(n . wi_k, 0)`` of :func:`area_light` converges to. It is the float64 reference twin of the
    area-light quadrature.

    Args:
        x: shading points, ``[..., 3]``, float, world space.
        normal: surface normals at ``x``, ``[..., 3]``, float, any non-zero length (normalised here).
        polygon: the lamp's vertices in order, ``[K, 3]``, ``K >= 3``, float, planar and convex or not,
            counter-clockwise seen from its emitting front.
        radiance: emitted radiance, ``[..., C]`` (usually ``[C]``), float, ``>= 0``.
        two_sided: the polygon emits from both sides.

    Returns:
        ``E``, ``[..., C]``, irradiance (W/m^2-like) at each point.

    Raises:
        ValueError: wrong shapes, NaN/Inf, negative ``radiance``, a zero ``normal``, or a polygon vertex below
            the tangent plane of some ``x`` (``(v_i - x) . n < 0``): the formula does not clip the polygon to
            the upper hemisphere, so it would count light from below the surface.

    **Differentiability:** smooth in ``x``, ``normal``, ``polygon`` and ``radiance`` while ``x`` is off the
    polygon's edges and plane (``theta_i`` is computed with ``atan2``, not ``acos``); an edge whose line passes
    through ``x`` contributes 0 with zero gradient.

    Example: the triangle ``(e_x, e_z, e_y)`` faces the origin and covers one octant of the sphere around it,
    whose projected solid angle onto ``n = e_z`` is ``pi / 4``::

        >>> eye = torch.eye(3, dtype=torch.float64)
        >>> E = polygon_irradiance(torch.zeros(3, dtype=torch.float64), eye[2], eye[[0, 2, 1]],
        ...                        torch.tensor([4 / math.pi], dtype=torch.float64))
        >>> round(E.item(), 12)
        1.0
    """
    if not isinstance(two_sided, bool):
        raise TypeError(f"two_sided must be a bool; got {type(two_sided).__name__}")
    check_tensor(x, "x", trailing=(3,), floating=True, finite=True)
    check_tensor(normal, "normal", trailing=(3,), floating=True, finite=True, device=x.device)
    check_tensor(polygon, "polygon", trailing=(None, 3), min_dims=2, max_dims=2, floating=True, finite=True,
                 device=x.device)
    if polygon.shape[0] < 3:
        raise ValueError(f"polygon must have at least 3 vertices, shape [K, 3]; got {tuple(polygon.shape)}")
    check_tensor(radiance, "radiance", trailing=(None,), floating=True, finite=True, device=x.device)
    if bool((radiance < 0).any()):
        raise ValueError(f"radiance must be non-negative; got minimum {float(radiance.detach().min())}")
    norm = torch.linalg.vector_norm(normal, dim=-1, keepdim=True)
    if bool((norm <= 0).any()):
        raise ValueError("normal must have non-zero length; got a zero vector")
    n = (normal / norm)[..., None, :]  # [..., 1, 3]
    a = polygon - x[..., None, :]  # [..., K, 3]
    height = (a * n).sum(-1)
    tol = 64 * torch.finfo(a.dtype).eps * torch.linalg.vector_norm(a, dim=-1)
    if bool((height < -tol).any()):
        raise ValueError("polygon must lie entirely above the tangent plane of every x ((v_i - x) . normal >= 0); "
                         "got a vertex below it: clip the polygon first")
    b = a.roll(-1, dims=-2)
    c = torch.linalg.cross(a, b, dim=-1)
    c_sq = (c * c).sum(-1)
    ok = c_sq > 0
    c_norm = torch.where(ok, c_sq, torch.ones_like(c_sq)).sqrt()
    theta = torch.atan2(c_norm, (a * b).sum(-1))
    term = torch.where(ok, theta / c_norm * (c * n).sum(-1), torch.zeros_like(c_sq))
    s = 0.5 * term.sum(-1)
    proj = s.abs() if two_sided else (-s).clamp_min(0.0)
    return radiance * proj[..., None]


# --------------------------------------------------------------------------------------------------------------
# helpers


def check_samples_per_face(samples_per_face: int) -> int:
    """Raise unless ``samples_per_face`` is a positive perfect square ``n^2``; return ``n``."""
    check_positive_int(samples_per_face, "samples_per_face")
    n = math.isqrt(samples_per_face)
    if n * n != samples_per_face:
        raise ValueError(f"samples_per_face must be a perfect square (1, 4, 9, 16, ...); got {samples_per_face}")
    return n


def _barycentrics(samples_per_face: int) -> torch.Tensor:
    """``[S, 2]`` float64 ``(u, v)`` of the centroids of the ``n^2`` congruent sub-triangles, ``S = n^2``."""
    n = check_samples_per_face(samples_per_face)
    i, j = torch.meshgrid(torch.arange(n, dtype=torch.float64), torch.arange(n, dtype=torch.float64),
                          indexing="ij")
    up = (i + j <= n - 1).reshape(-1)
    down = (i + j <= n - 2).reshape(-1)
    ij = torch.stack([i.reshape(-1), j.reshape(-1)], -1)
    return torch.cat([ij[up] + 1.0 / 3.0, ij[down] + 2.0 / 3.0]) / n


def _quadrature(verts: torch.Tensor, faces: torch.Tensor, samples_per_face: int):
    """Points ``[F*S, 3]`` and vector areas ``(v1 - v0) x (v2 - v0) / (2 S)`` ``[F*S, 3]``, face-major."""
    uv = _barycentrics(samples_per_face).to(dtype=verts.dtype, device=verts.device)
    tri = verts[faces.long()]  # [F, 3, 3]
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    points = tri[:, None, 0] + uv[None, :, :1] * e1[:, None] + uv[None, :, 1:] * e2[:, None]  # [F, S, 3]
    vector_area = torch.linalg.cross(e1, e2, dim=-1) / (2 * samples_per_face)
    S = uv.shape[0]
    return points.reshape(-1, 3), vector_area.repeat_interleave(S, dim=0)
