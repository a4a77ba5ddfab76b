"""Emitter sampling for Monte Carlo integrators: ``sample_direct``, ``eval`` and ``pdf`` of every light type.

Mitsuba's emitter discipline as pure PyTorch functions (float64 recommended); the scene's light classes
(:mod:`lumigrad.scene.lights`) offer them as methods, and the rasterizer keeps using the delta samples
(:class:`LightSample`) of :mod:`lumigrad.shading.lights` and the area lights' quadrature.

Conventions (``docs/conventions.md``): world space; ``ref_points [..., 3]`` are the shading points;
``wi [..., 3]`` is the unit direction **from the shading point towards the light** (away from the surface, as
a BSDF's ``wi``); densities are per unit solid angle at the shading point, ``[..., 1]``; ``u [..., 2]`` are
uniform numbers in [0, 1)^2; colours are ``[..., C]``. No visibility: a shadow ray from ``ref_points`` along
``wi`` up to ``distance`` decides occlusion, in the integrator.

* ``sample_direct(ref, u) -> DirectionSample(wi, distance, weight, pdf, is_delta)`` with
  ``weight = radiance arriving along wi / pdf`` (for a delta light: the irradiance ``L`` of the
  :class:`LightSample`, ``pdf = 1``), so the direct light reflected by a BSDF is ``f(wi) weight max(n.wi, 0)``.
* ``eval(ref, wi) -> [..., C]``: the radiance arriving at ``ref`` from direction ``wi`` (0 for delta lights,
  which no direction hits).
* ``pdf(ref, wi) -> [..., 1]``: the density with which ``sample_direct`` picks ``wi`` (0 for delta lights), for
  multiple importance sampling with BSDF samples.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Protocol, runtime_checkable

import torch

from .._checks import check_choice, check_mesh, check_tensor
from .envmap import direction_to_equirect, envmap_lookup
from .lights import MIN_LIGHT_DISTANCE, LightSample
from .warps import spherical_triangle, spherical_triangle_solid_angle

__all__ = [
    "AREA_SAMPLING",
    "AUTO_AREA_DISTANCE",
    "AUTO_SOLID_ANGLE_MAX_FACES",
    "DirectionSample",
    "Emitter",
    "area_light_eval",
    "area_light_pdf",
    "area_light_area_table",
    "area_light_bounds",
    "area_light_sample_direct",
    "area_light_solid_angle_points_unchecked",
    "delta_direction_sample",
    "envmap_pdf",
    "envmap_sample_direct",
]

#: How :func:`area_light_sample_direct` picks points: ``"solid_angle"`` (a triangle by the solid angle it
#: subtends at the shading point, then uniformly in that solid angle, Arvo 1995), ``"area"`` (a triangle by
#: its area, then uniformly on it) or ``"auto"`` (by area from points farther than :data:`AUTO_AREA_DISTANCE`
#: bounding radii from the light's bounding-sphere centre, by solid angle nearer; by area everywhere for lights
#: of more than :data:`AUTO_SOLID_ANGLE_MAX_FACES` triangles).
AREA_SAMPLING = ("solid_angle", "area", "auto")
#: ``"auto"`` samples by area beyond this many bounding radii ``r`` from the light's centre: there the distance
#: to the light's points varies by at most ``(4 + 1) / (4 - 1)`` over the light, so the ``d^2`` of the area
#: density per solid angle (``d^2 / (A |cos|)``) by at most ``(5 / 3)^2 = 2.8`` (docs/design.md).
AUTO_AREA_DISTANCE = 4.0
#: ``"auto"`` samples a light of more triangles than this by area from every point: choosing a triangle by solid
#: angle costs one solid angle per triangle and sample (a sphere lamp of 1,280 triangles rendered 10x slower
#: than by area, 5,120 triangles 17x), choosing by area a binary search; quads, boxes and small polygons keep
#: the solid angle near them.
AUTO_SOLID_ANGLE_MAX_FACES = 32
#: Smallest ``|cos|`` at the light used in area-sampling densities (edge-on points: a huge but finite pdf).
_MIN_COS = 1e-12
#: Smallest ``sin(theta)`` of an environment direction in its density (the poles).
_MIN_SIN = 1e-12


class DirectionSample(NamedTuple):
    """A direction towards an emitter, drawn for next-event estimation.

    Attributes:
        wi: ``[..., 3]`` unit direction from the shading point towards the sampled point of the light.
        distance: ``[...]`` distance to that point, for a shadow ray (``+inf`` for directional and environment
            lights).
        weight: ``[..., C]`` radiance arriving along ``wi`` divided by ``pdf`` (a delta light's irradiance, with
            ``pdf = 1``); 0 where the sample is invalid (the light's back, nothing to sample).
        pdf: ``[..., 1]`` density of ``wi`` per unit solid angle (1 for delta lights, 0 where invalid).
        is_delta: whether the light is a delta light (point, spot, directional): its ``pdf`` is not a density
            and BSDF sampling can never hit it (no multiple importance sampling).
    """

    wi: torch.Tensor
    distance: torch.Tensor
    weight: torch.Tensor
    pdf: torch.Tensor
    is_delta: bool


@runtime_checkable
class Emitter(Protocol):
    """What a light offers a Monte Carlo integrator (a structural protocol; the light classes of
    :mod:`lumigrad.scene.lights` except ``SHLight`` satisfy it). See the module docstring for shapes."""

    is_delta: bool

    def sample_direct(self, ref_points: torch.Tensor, u: torch.Tensor) -> DirectionSample: ...  # noqa: E704

    def eval(self, ref_points: torch.Tensor, wi: torch.Tensor) -> torch.Tensor: ...  # noqa: E704

    def pdf(self, ref_points: torch.Tensor, wi: torch.Tensor) -> torch.Tensor: ...  # noqa: E704


def delta_direction_sample(sample: LightSample) -> DirectionSample:
    """The :class:`DirectionSample` of a delta light's :class:`LightSample`: ``weight = L``, ``pdf = 1``.

    **Differentiability:** the tensors of ``sample`` pass through unchanged.

    Example:
        >>> from lumigrad.shading import point_light
        >>> s = delta_direction_sample(point_light(torch.zeros(3), torch.tensor([0.0, 2.0, 0.0]), torch.tensor([4.0])))
        >>> s.weight.tolist(), s.pdf.tolist(), s.is_delta
        ([1.0], [1.0], True)
    """
    wi, L, distance = sample
    pdf = torch.ones(wi.shape[:-1] + (1,), dtype=wi.dtype, device=wi.device)
    return DirectionSample(wi, distance.expand(wi.shape[:-1]), L.expand(wi.shape[:-1] + L.shape[-1:]), pdf, True)


# ------------------------------------------------------------------------------------------------ area lights
def area_light_sample_direct(ref_points: torch.Tensor, verts: torch.Tensor, faces: torch.Tensor,
                             radiance: torch.Tensor, u: torch.Tensor, *, two_sided: bool = False,
                             method: str = "solid_angle", min_distance: float = MIN_LIGHT_DISTANCE
                             ) -> DirectionSample:
    """Sample a point of an emissive triangle mesh (:class:`lumigrad.AreaLight`) as seen from ``ref_points``.

    ``method="solid_angle"`` (default): choose a triangle with probability proportional to the solid angle
    ``Omega_f`` it subtends at the point (only triangles that emit towards it: their front, or both sides when
    ``two_sided``), then a direction uniformly inside it (:func:`lumigrad.shading.warps.spherical_triangle`)::

        pdf = 1 / Omega,   Omega = sum_f Omega_f,   weight = L_e * Omega

    ``method="area"``: choose a triangle with probability proportional to its area, a point ``y`` uniformly on
    it (``b0 = 1 - sqrt(u0)``, ``b1 = u1 sqrt(u0)``), and with ``d = max(|y - x|, min_distance)``,
    ``cos_y = -n_y . wi`` and ``A`` the total area::

        pdf = d^2 / (A |cos_y|),   weight = L_e max(cos_y, 0) A / d^2      (|cos_y| when two_sided)

    ``u_0`` picks the triangle and is then rescaled to [0, 1) for the point (one 2D number per sample).

    ``method="auto"``: ``"area"`` at points ``x`` with ``|x - c|^2 > (AUTO_AREA_DISTANCE r)^2`` (``c, r``:
    :func:`area_light_bounds`), ``"solid_angle"`` elsewhere (a choice by the point alone, so the density
    stays well defined: :func:`area_light_pdf` makes the same choice); ``"area"`` everywhere for a light of more
    than :data:`AUTO_SOLID_ANGLE_MAX_FACES` triangles.

    Args:
        ref_points: shading points, ``[..., 3]``, float, world space.
        verts: light vertices, ``[V, 3]``, float, world space.
        faces: light triangles, ``[F, 3]``, integer, counter-clockwise seen from the emitting front.
        radiance: emitted radiance, ``[C]`` or per face ``[F, C]``, ``>= 0``.
        u: uniform numbers, ``[..., 2]`` in [0, 1), broadcasting against ``ref_points``.
        two_sided: both sides emit.
        method: ``"solid_angle"``, ``"area"`` or ``"auto"`` (:data:`AREA_SAMPLING`).
        min_distance: lower clamp on the distance in the area method, as in :func:`lumigrad.shading.point_light`.

    Returns:
        :class:`DirectionSample` over the broadcast batch dims; ``is_delta = False``. Points that see no
        emitting side (solid angle) or sample a back face (area) get ``weight = 0`` (and ``pdf = 0`` for the
        former).

    Raises:
        ValueError / TypeError: bad shapes, dtypes, devices, NaN / Inf, negative ``radiance``, ``u`` outside
            [0, 1], an unknown ``method``.

    **Differentiability:** for a fixed ``u``, ``wi``, ``distance``, ``weight`` and ``pdf`` are smooth in
    ``ref_points``, ``verts`` (the sample moves with the lamp: a reparameterisation) and ``radiance``, between
    the boundaries in ``u_0`` where the choice of the triangle changes. Those boundaries move with the
    triangles' probabilities, so ``d weight / d theta`` misses their contribution: for unbiased gradients of
    rendered integrals detach the sample (``wi``, ``pdf``) and differentiate ``eval`` (or ``weight * pdf``), as
    Mitsuba's ``prb`` does.

    Example: a unit square 1 above the origin facing down; from the origin its solid angle is
    ``4 atan(1 / (4 sqrt(1.5)))`` whatever ``u``::

        >>> f64 = torch.float64
        >>> verts = torch.tensor([[-.5, -.5, 1], [.5, -.5, 1], [.5, .5, 1], [-.5, .5, 1]], dtype=f64)
        >>> faces = torch.tensor([[0, 2, 1], [0, 3, 2]])
        >>> s = area_light_sample_direct(torch.zeros(3, dtype=f64), verts, faces, torch.ones(1, dtype=f64),
        ...                              torch.tensor([0.3, 0.6], dtype=f64))
        >>> round(1 / s.pdf.item(), 9) == round(4 * math.atan(1 / (4 * math.sqrt(1.5))), 9)
        True
    """
    x, batch = _check_area_args(ref_points, verts, faces, radiance, two_sided, method, u=u)
    u = u.expand(batch + (2,)).reshape(-1, 2)
    x = x.expand(batch + (3,)).reshape(-1, 3)
    tri = verts[faces.long()]  # [F, 3, 3]
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    cross = torch.linalg.cross(e1, e2, dim=-1)  # 2 * area * front normal
    le = radiance.expand(faces.shape[0], radiance.shape[-1])

    def sample(x, u):
        if method == "area":
            return _sample_area(x, u, tri, e1, e2, cross, le, two_sided, min_distance)
        if method == "solid_angle":
            return _sample_solid_angle(x, u, tri, cross, le, two_sided)[:4]
        # by area from the points far from the light, by solid angle from the others (each only where used)
        far = _far(x, verts, faces)
        by_area, near = far.nonzero()[:, 0], (~far).nonzero()[:, 0]
        if near.numel() == 0:
            return _sample_area(x, u, tri, e1, e2, cross, le, two_sided, min_distance)
        if by_area.numel() == 0:
            return _sample_solid_angle(x, u, tri, cross, le, two_sided)[:4]
        pieces = [_sample_area(x.index_select(0, by_area), u.index_select(0, by_area), tri, e1, e2, cross, le,
                               two_sided, min_distance),
                  _sample_solid_angle(x.index_select(0, near), u.index_select(0, near), tri, cross, le,
                                      two_sided)[:4]]
        return [a.new_zeros((x.shape[0],) + a.shape[1:]).index_copy(0, by_area, a).index_copy(0, near, b)
                for a, b in zip(*pieces)]

    wi, distance, weight, pdf = _by_pieces(sample, faces.shape[0], x, u)
    return DirectionSample(wi.reshape(batch + (3,)), distance.reshape(batch), weight.reshape(batch + le.shape[-1:]),
                           pdf.reshape(batch + (1,)), False)


def area_light_eval(ref_points: torch.Tensor, wi: torch.Tensor, verts: torch.Tensor, faces: torch.Tensor,
                    radiance: torch.Tensor, *, two_sided: bool = False) -> torch.Tensor:
    """Radiance ``[..., C]`` arriving at ``ref_points`` from direction ``wi`` off an emissive triangle mesh.

    The ray ``ref + t wi`` (``t > 0``) is intersected with every triangle (Moller-Trumbore); the nearest hit
    gives its face's radiance if the ray meets that face's emitting side (front, or either when
    ``two_sided``), else 0; a ray that misses gives 0.

    Args:
        ref_points: ``[..., 3]``; wi: ``[..., 3]`` directions (normalised here), broadcasting together;
        verts, faces, radiance, two_sided: as :func:`area_light_sample_direct`.

    Returns:
        ``[..., C]`` radiance.

    **Differentiability:** linear in ``radiance``; piecewise constant in ``ref_points``, ``wi`` and ``verts``
    (zero gradient: moving the light's edges across a ray is a visibility discontinuity).

    Example: straight up into the square of :func:`area_light_sample_direct`'s example::

        >>> f64 = torch.float64
        >>> verts = torch.tensor([[-.5, -.5, 1], [.5, -.5, 1], [.5, .5, 1], [-.5, .5, 1]], dtype=f64)
        >>> area_light_eval(torch.zeros(3, dtype=f64), torch.tensor([0, 0, 1.0], dtype=f64), verts,
        ...                 torch.tensor([[0, 2, 1], [0, 3, 2]]), torch.tensor([2.0], dtype=f64)).tolist()
        [2.0]
    """
    x, batch = _check_area_args(ref_points, verts, faces, radiance, two_sided, "area", wi=wi)
    x, d = _flat_rays(x, wi, batch)
    tri = verts[faces.long()]
    le_f = radiance.expand(faces.shape[0], radiance.shape[-1])

    def radiance_along(x, d):
        hit, face, _, cos_y = _intersect(x, d, tri)
        emits = hit & ((cos_y.abs() if two_sided else cos_y) > 0)
        return torch.where(emits[:, None], le_f[face], torch.zeros((), dtype=le_f.dtype, device=le_f.device)),

    out, = _by_pieces(radiance_along, faces.shape[0], x, d)
    return out.reshape(batch + le_f.shape[-1:])


def area_light_pdf(ref_points: torch.Tensor, wi: torch.Tensor, verts: torch.Tensor, faces: torch.Tensor, *,
                   two_sided: bool = False, method: str = "solid_angle",
                   min_distance: float = MIN_LIGHT_DISTANCE) -> torch.Tensor:
    """Density ``[..., 1]`` per solid angle with which :func:`area_light_sample_direct` picks ``wi``.

    The ray ``ref + t wi`` is intersected with the light (nearest hit, as :func:`area_light_eval`); a miss has
    density 0. Otherwise, at the hit point with distance ``d`` and ``cos_y = -n_y . wi``:
    ``"area"``: ``d^2 / (A |cos_y|)``; ``"solid_angle"``: ``1 / Omega`` if the hit face emits towards ``ref``
    (its front, or any side when ``two_sided``), else 0; ``"auto"``: the density of the method
    :func:`area_light_sample_direct` chooses at ``ref``. This is the density of the nearest point along ``wi``
    (Mitsuba's ``pdf_direction``, what multiple importance sampling needs); where several triangles of one
    light overlap as seen from ``ref`` (non-convex or closed lights), the sampler's marginal density of
    directions is the sum over the overlapping points.

    Args:
        ref_points, wi: ``[..., 3]``, broadcasting together (``wi`` normalised here).
        verts, faces, two_sided, method, min_distance: as :func:`area_light_sample_direct`.

    Returns:
        ``[..., 1]`` densities, 1 / steradian.

    **Differentiability:** smooth in ``ref_points`` and ``verts`` (through ``Omega``, or ``d``, ``cos_y`` and
    ``A``) away from the light's silhouette, where the density jumps to 0 (zero gradient).

    Example: straight up into the square of :func:`area_light_sample_direct`'s example, area sampling:
    ``d = 1``, ``cos_y = 1``, ``A = 1``::

        >>> verts = torch.tensor([[-.5, -.5, 1], [.5, -.5, 1], [.5, .5, 1], [-.5, .5, 1]], dtype=torch.float64)
        >>> area_light_pdf(torch.zeros(3, dtype=torch.float64), torch.tensor([0, 0, 1.0], dtype=torch.float64),
        ...                verts, torch.tensor([[0, 2, 1], [0, 3, 2]]), method="area").tolist()
        [1.0]
    """
    x, batch = _check_area_args(ref_points, verts, faces, None, two_sided, method, wi=wi)
    x, d = _flat_rays(x, wi, batch)
    tri = verts[faces.long()]

    def density(x, d):
        hit, face, t, cos_y = _intersect(x, d, tri)
        if method == "auto":
            pdf = _pdf_area(tri, hit, t, cos_y, min_distance)
            near = (~_far(x, verts, faces)).nonzero()[:, 0]
            if near.numel():
                pdf = pdf.index_copy(0, near, _pdf_solid_angle(x.index_select(0, near), tri,
                                                               hit.index_select(0, near),
                                                               cos_y.index_select(0, near), two_sided))
            return pdf,
        if method == "area":
            return _pdf_area(tri, hit, t, cos_y, min_distance),
        return _pdf_solid_angle(x, tri, hit, cos_y, two_sided),

    pdf, = _by_pieces(density, faces.shape[0], x, d)
    return pdf.reshape(batch + (1,))


def _total_area(cross: torch.Tensor) -> torch.Tensor:
    """The light's area ``[]`` from its triangles' ``cross [F, 3]`` (twice each area times its normal)."""
    return 0.5 * torch.linalg.vector_norm(cross, dim=-1).sum()


def _pdf_area(tri, hit, t, cos_y, min_distance):
    area = _total_area(torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1))
    valid = hit & (area > 0)  # a light of no area is never hit; its density is 0, not d^2 / 0
    dist = t.clamp_min(min_distance)
    pdf = dist * dist / (torch.where(area > 0, area, torch.ones_like(area)) * cos_y.abs().clamp_min(_MIN_COS))
    return torch.where(valid, pdf, torch.zeros_like(pdf))


def _pdf_solid_angle(x, tri, hit, cos_y, two_sided):
    omega = _emitting_solid_angles(x, tri, two_sided).sum(-1)  # [P]
    counted = (cos_y.abs() if two_sided else cos_y) > 0
    valid = hit & counted & (omega > 0)
    pdf = 1.0 / torch.where(valid, omega, torch.ones_like(omega))
    return torch.where(valid, pdf, torch.zeros_like(pdf))


def area_light_bounds(verts: torch.Tensor, faces: torch.Tensor):
    """The bounding sphere of a light's triangles, detached and unchecked: ``(centre [3], radius [])``, the
    centre of their axis-aligned box and the largest distance of a corner from it (what ``method="auto"`` of
    :func:`area_light_sample_direct` measures distances by)."""
    with torch.no_grad():
        corners = verts.detach()[faces.long()].reshape(-1, 3)
        centre = 0.5 * (corners.amin(0) + corners.amax(0))
        return centre, torch.linalg.vector_norm(corners - centre, dim=-1).amax()


def _far(x: torch.Tensor, verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """``[P]`` bool: ``"auto"`` samples the light by area from ``x [P, 3]`` (everywhere for a light of more than
    :data:`AUTO_SOLID_ANGLE_MAX_FACES` triangles)."""
    if faces.shape[0] > AUTO_SOLID_ANGLE_MAX_FACES:
        return torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    centre, radius = area_light_bounds(verts, faces)
    v = x.detach() - centre.to(x.dtype)
    return (v * v).sum(-1) > (AUTO_AREA_DISTANCE * radius.to(x.dtype)) ** 2


def _check_area_args(ref_points, verts, faces, radiance, two_sided, method, u=None, wi=None):
    check_tensor(ref_points, "ref_points", trailing=(3,), floating=True, finite=True)
    device = ref_points.device
    check_mesh(verts, faces, device=device, what="an area light")
    if radiance is not None:
        check_tensor(radiance, "radiance", floating=True, finite=True, device=device)
        F = faces.shape[0]
        if radiance.dim() not in (1, 2) or (radiance.dim() == 2 and radiance.shape[0] != F) or radiance.shape[-1] == 0:
            raise ValueError(f"radiance must have shape [C] or [F, C] with F = {F} faces; got {tuple(radiance.shape)}")
        if bool((radiance < 0).any()):
            raise ValueError(f"radiance must be non-negative; got minimum {float(radiance.detach().min())}")
    if not isinstance(two_sided, bool):
        raise TypeError(f"two_sided must be a bool; got {type(two_sided).__name__}")
    check_choice(method, "method", AREA_SAMPLING)
    batch = ref_points.shape[:-1]
    for name, t, size in (("u", u, 2), ("wi", wi, 3)):
        if t is None:
            continue
        check_tensor(t, name, trailing=(size,), floating=True, finite=True, device=device)
        try:
            batch = torch.broadcast_shapes(batch, t.shape[:-1])
        except RuntimeError:
            raise ValueError(f"{name} has batch dims {tuple(t.shape[:-1])}, which do not broadcast with "
                             f"ref_points' {tuple(ref_points.shape[:-1])}") from None
    if u is not None and u.numel() and bool(((u < 0) | (u > 1)).any()):
        raise ValueError(f"u must lie in [0, 1]; got values in [{float(u.min()):.9g}, {float(u.max()):.9g}]")
    if wi is not None and wi.numel() and bool((wi.detach().abs().amax(-1) == 0).any()):
        raise ValueError("wi must have non-zero length everywhere; got a zero vector")
    return ref_points, torch.Size(batch)


#: Shading points x light triangles in one piece of the dense area-light computations (each pair holds a few
#: dozen floats of temporaries: 2^21 pairs stay near 100 MB in float64 whatever the numbers of points and faces).
PAIRS_PER_PIECE = 1 << 21


def _by_pieces(fn, n_faces: int, *rows: torch.Tensor):
    """``fn(*rows)`` (a tuple of tensors, rows first) on consecutive slices of at most ``PAIRS_PER_PIECE //
    n_faces`` rows, concatenated: the same values (each row's are its own), memory bounded by the piece."""
    n = rows[0].shape[0]
    step = max(1, PAIRS_PER_PIECE // max(n_faces, 1))
    if n <= step:
        return tuple(fn(*rows))
    pieces = [tuple(fn(*(r[i:i + step] for r in rows))) for i in range(0, n, step)]
    return tuple(torch.cat(parts) for parts in zip(*pieces))


def _flat_rays(x, wi, batch):
    d = wi / torch.linalg.vector_norm(wi, dim=-1, keepdim=True)
    return x.expand(batch + (3,)).reshape(-1, 3), d.expand(batch + (3,)).reshape(-1, 3)


def _intersect(x, d, tri):
    """Nearest hit of rays ``x + t d`` (``[P, 3]``) with triangles ``[F, 3, 3]`` (Moller-Trumbore, both sides):
    ``(hit [P], face [P], t [P], cos_y [P])`` with ``cos_y = -n_face . d`` (positive on the front)."""
    v0, e1, e2 = tri[:, 0], tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    p = torch.linalg.cross(d[:, None], e2[None], dim=-1)  # [P, F, 3]
    det = (e1[None] * p).sum(-1)
    ok = det.abs() > 1e-300
    inv = 1.0 / torch.where(ok, det, torch.ones_like(det))
    s = x[:, None] - v0[None]
    b1 = (s * p).sum(-1) * inv
    q = torch.linalg.cross(s, e1[None].expand_as(s), dim=-1)
    b2 = (d[:, None] * q).sum(-1) * inv
    t = (e2[None] * q).sum(-1) * inv
    hits = ok & (b1 >= 0) & (b2 >= 0) & (b1 + b2 <= 1) & (t > 0)
    t_hit = torch.where(hits, t, torch.full_like(t, math.inf))
    t_min, face = t_hit.min(-1)
    hit = torch.isfinite(t_min)
    t_min = torch.where(hit, t_min, torch.ones_like(t_min))
    n = torch.linalg.cross(e1, e2, dim=-1)
    n = n / torch.linalg.vector_norm(n, dim=-1, keepdim=True).clamp_min(1e-300)
    cos_y = -(n[face] * d).sum(-1)
    return hit, face, t_min, cos_y


def _emitting_solid_angles(x, tri, two_sided):
    """``[P, F]`` solid angle of each triangle at each point, 0 for triangles that do not emit towards it."""
    v = tri[None] - x[:, None, None]  # [P, F, 3, 3]
    v = v / torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(1e-300)
    omega = spherical_triangle_solid_angle(v[:, :, 0], v[:, :, 1], v[:, :, 2])[..., 0]
    if not two_sided:
        # x is in front of the face when (v0 - x) . n < 0, i.e. the triple product of the directions is negative.
        triple = (v[:, :, 0] * torch.linalg.cross(v[:, :, 1], v[:, :, 2], dim=-1)).sum(-1)
        omega = torch.where(triple < 0, omega, torch.zeros_like(omega))
    return omega


def _cdf(weights: torch.Tensor) -> torch.Tensor:
    """The cumulative distribution of ``weights [..., F]`` along the last dim, its last entry exactly 1."""
    total = weights.sum(-1, keepdim=True)
    cdf = torch.cumsum(weights, -1) / torch.where(total > 0, total, torch.ones_like(total))
    return torch.cat([cdf[..., :-1], torch.ones_like(cdf[..., -1:])], -1)


def area_light_area_table(verts: torch.Tensor, faces: torch.Tensor):
    """What :func:`area_light_sample_direct` (``method="area"``) picks triangles by, detached and unchecked
    (for kernels that sample the light themselves): ``(cdf [F], area [])``, the cumulative area fractions of
    the triangles (the last entry 1) and the total area (the ``A`` of the densities)."""
    with torch.no_grad():
        tri = verts.detach()[faces.long()]
        cross = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)
        return _cdf(torch.linalg.vector_norm(cross, dim=-1)), _total_area(cross)


def _pick(weights: torch.Tensor, u0: torch.Tensor):
    """Choose a column of ``weights [P, F]`` by ``u0 [P]``: ``(index [P], u0 rescaled to [0, 1))``.

    The choice is discrete; the rescaled number is differentiable in the weights (the sample then is a
    continuous function of the parameters between the choice's boundaries)."""
    cdf = _cdf(weights)
    k = torch.searchsorted(cdf.detach().contiguous(), u0[:, None].contiguous(), right=True)[:, 0]
    k = k.clamp(max=weights.shape[-1] - 1)
    lo = torch.where(k > 0, cdf.gather(-1, (k - 1).clamp_min(0)[:, None])[:, 0], torch.zeros_like(u0))
    width = cdf.gather(-1, k[:, None])[:, 0] - lo
    rescaled = (u0 - lo) / torch.where(width > 0, width, torch.ones_like(width))
    return k, rescaled.clamp(0.0, 1.0 - torch.finfo(u0.dtype).eps)


def _sample_area(x, u, tri, e1, e2, cross, le, two_sided, min_distance):
    double_area = torch.linalg.vector_norm(cross, dim=-1)
    total = 0.5 * double_area.sum()
    area = torch.where(total > 0, total, torch.ones_like(total))  # no area: weight and pdf 0 below
    k, u0 = _pick(double_area.expand(x.shape[0], -1), u[:, 0])
    su = u0.sqrt()
    b1, b2 = u[:, 1] * su, (1.0 - u[:, 1]) * su  # and b0 = 1 - su: uniform on the triangle
    y = tri[k, 0] + b1[:, None] * e1[k] + b2[:, None] * e2[k]
    v = y - x
    d = torch.linalg.vector_norm(v, dim=-1).clamp_min(min_distance)
    wi = v / d[:, None]
    n = cross[k] / torch.where(double_area[k] > 0, double_area[k], torch.ones_like(double_area[k]))[:, None]
    cos_y = -(n * wi).sum(-1)
    emit_cos = cos_y.abs() if two_sided else cos_y.clamp_min(0.0)
    weight = le[k] * (emit_cos * total / (d * d))[:, None]
    pdf = d * d / (area * cos_y.abs().clamp_min(_MIN_COS))
    return wi, d, weight, torch.where(total > 0, pdf, torch.zeros_like(pdf))


def _sample_solid_angle(x, u, tri, cross, le, two_sided):
    omega_f = _emitting_solid_angles(x, tri, two_sided)  # [P, F]
    omega = omega_f.sum(-1)
    valid = omega > 0
    k, u0 = _pick(omega_f, u[:, 0])
    corners = tri[k] - x[:, None]  # [P, 3, 3]
    # Points that see no emitting face sample a stand-in octant (their weight and pdf are 0), so that no
    # degenerate triangle sends NaN into the gradients.
    octant = torch.eye(3, dtype=x.dtype, device=x.device).expand_as(corners)
    dirs = torch.where(valid[:, None, None], corners, octant)
    a, b, c = (dirs[:, i] / torch.linalg.vector_norm(dirs[:, i], dim=-1, keepdim=True).clamp_min(1e-300)
               for i in range(3))
    wi = spherical_triangle(a, b, c, torch.stack([u0, u[:, 1]], -1))
    # Distance along wi to the chosen triangle's plane.
    n = cross[k]
    denom = (n * wi).sum(-1)
    distance = (n * corners[:, 0]).sum(-1) / torch.where(denom != 0, denom, torch.ones_like(denom))
    distance = torch.where(valid & (denom != 0), distance, torch.full_like(distance, math.inf))
    safe = torch.where(valid, omega, torch.ones_like(omega))
    weight = torch.where(valid[:, None], le[k] * safe[:, None], torch.zeros((), dtype=le.dtype, device=le.device))
    pdf = torch.where(valid, 1.0 / safe, torch.zeros_like(safe))
    return wi, distance, weight, pdf, k


def area_light_solid_angle_points_unchecked(ref_points: torch.Tensor, verts: torch.Tensor, faces: torch.Tensor,
                                            u: torch.Tensor, *, two_sided: bool = False):
    """Where :func:`area_light_sample_direct` (``method="solid_angle"``) lands on the lamp for the numbers ``u``:
    ``(triangle [P], barycentrics (b1, b2) [P, 2], density per unit area there [P])``, detached, for shading
    points ``ref_points [P, 3]`` and ``u [P, 2]`` (unchecked: the caller validated the light). The point is
    ``v0 + b1 (v1 - v0) + b2 (v2 - v0)`` of that triangle, and its density ``pdf |cos_y| / d^2`` (0 where no
    emitting side is seen): an integrator can hold the barycentrics and the density fixed and move the point
    with the lamp (a sample of the lamp's area parameterisation drawn by solid angle)."""
    with torch.no_grad():
        x = ref_points
        tri = verts.detach()[faces.long()].to(x.dtype)
        e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
        cross = torch.linalg.cross(e1, e2, dim=-1)
        le = torch.ones(faces.shape[0], 1, dtype=x.dtype, device=x.device)
        wi, distance, _, pdf, k = _sample_solid_angle(x, u, tri, cross, le, two_sided)
        valid = (pdf > 0) & torch.isfinite(distance)
        d = torch.where(valid, distance, torch.ones_like(distance))
        r = x + wi * d[:, None] - tri[k, 0]
        n = cross[k]
        nn = (n * n).sum(-1).clamp_min(1e-300)
        b1 = (torch.linalg.cross(r, e2[k], dim=-1) * n).sum(-1) / nn
        b2 = (torch.linalg.cross(e1[k], r, dim=-1) * n).sum(-1) / nn
        cos_y = (n * wi).sum(-1).abs() / nn.sqrt()
        density = torch.where(valid, pdf * cos_y / (d * d), torch.zeros_like(pdf))
        return k, torch.stack([b1, b2], -1), density


# ------------------------------------------------------------------------------------------ environment maps
def _luminance(env: torch.Tensor) -> torch.Tensor:
    if env.shape[-1] == 3:
        w = torch.tensor([0.2126, 0.7152, 0.0722], dtype=env.dtype, device=env.device)
        return (env * w).sum(-1)
    return env.mean(-1)


def _env_pmf(env: torch.Tensor) -> torch.Tensor:
    """``[H, W]`` texel probabilities: the texel's integral of the bilinear luminance times ``sin(theta)`` at its
    row's centre, normalised (uniform in texels times ``sin(theta)`` for a black map). Differentiable in ``env``.

    The bilinear interpolant (:func:`envmap_lookup`: wrapping in longitude, clamped at the poles) integrates over
    a texel to the separable ``[1, 6, 1] / 8`` filter of the texels, so every direction with a non-zero lookup has
    a non-zero density (a texel-wise pmf alone would miss the light bilinear filtering spreads into black
    texels, and bias the estimate).
    """
    H, W = env.shape[:2]
    theta = (torch.arange(H, dtype=env.dtype, device=env.device) + 0.5) * (math.pi / H)
    lum = _luminance(env).clamp_min(0.0)
    lum = (torch.roll(lum, 1, 1) + 6 * lum + torch.roll(lum, -1, 1)) / 8
    up = torch.cat([lum[:1], lum[:-1]], 0)
    down = torch.cat([lum[1:], lum[-1:]], 0)
    w = (up + 6 * lum + down) / 8 * torch.sin(theta)[:, None]
    if not bool(w.detach().sum() > 0):
        w = torch.sin(theta)[:, None].expand(H, W)
    return w / w.sum()


def _env_table(env: torch.Tensor):
    """The sampling table of ``env [H, W, C]``, detached: ``(pmf [H, W], row_cdf [H], cond_cdf [H, W])``;
    rows and columns are chosen by inverting the marginal and conditional CDFs."""
    H, W = env.shape[:2]
    pmf = _env_pmf(env.detach())
    row = pmf.sum(1)
    row_cdf = torch.cumsum(row, 0) / row.sum()
    row_cdf[-1] = 1.0
    cond = torch.where(row[:, None] > 0, pmf / torch.where(row > 0, row, torch.ones_like(row))[:, None],
                       torch.full_like(pmf, 1.0 / W))
    cond_cdf = torch.cumsum(cond, 1)
    cond_cdf = cond_cdf / cond_cdf[:, -1:]
    cond_cdf[:, -1] = 1.0
    return pmf, row_cdf, cond_cdf


#: The sampling table of a map, ``(pmf [H, W], row_cdf [H], cond_cdf [H, W])``, detached: what
#: :func:`envmap_sample_direct` inverts (public for kernels that sample the map themselves).
envmap_sampling_table = _env_table


def _check_env_args(env, ref_points, other, name, size):
    check_tensor(env, "env", trailing=(None, None, None), max_dims=3, floating=True, finite=True)
    if env.shape[0] == 0 or env.shape[1] == 0 or env.shape[2] == 0:
        raise ValueError(f"env must have shape [H, W, C] with texels and channels; got {tuple(env.shape)}")
    check_tensor(ref_points, "ref_points", trailing=(3,), floating=True, finite=True, device=env.device)
    check_tensor(other, name, trailing=(size,), floating=True, finite=True, device=env.device)
    try:
        return torch.broadcast_shapes(ref_points.shape[:-1], other.shape[:-1])
    except RuntimeError:
        raise ValueError(f"{name} has batch dims {tuple(other.shape[:-1])}, which do not broadcast with "
                         f"ref_points' {tuple(ref_points.shape[:-1])}") from None


def envmap_pdf(env: torch.Tensor, ref_points: torch.Tensor, wi: torch.Tensor) -> torch.Tensor:
    """Density ``[..., 1]`` per solid angle with which :func:`envmap_sample_direct` picks ``wi``.

    With ``(u, v)`` the equirectangular coordinates of ``wi`` (:func:`lumigrad.shading.direction_to_equirect`),
    texel ``(i, j) = (floor(v H), floor(u W))`` and ``theta = pi v``::

        pdf(wi) = pmf[i, j] * H * W / (2 pi^2 sin(theta))

    the density of a texel chosen with probability ``pmf`` and a point uniform in its ``(u, v)`` rectangle,
    divided by the Jacobian ``2 pi^2 sin(theta)`` of the map from ``(u, v)`` to directions. ``pmf`` is
    proportional to the texel's integral of the bilinearly interpolated luminance (the ``[1, 6, 1] / 8`` filter
    of the texels in both directions; Rec. 709 weights for 3 channels, the mean otherwise) times ``sin(theta)``
    at its row's centre; uniform for a black map. So every direction whose :func:`envmap_lookup` is non-zero
    has a non-zero density, and :func:`envmap_sample_direct`'s estimates are unbiased.

    Args:
        env: the map, ``[H, W, C]`` linear radiance, layout of :func:`lumigrad.shading.equirect_directions`
            (world +y up).
        ref_points: ``[..., 3]`` shading points (a distant light: only their batch shape matters).
        wi: ``[..., 3]`` directions, any non-zero length.

    Returns:
        ``[..., 1]`` densities; they integrate to 1 over the sphere.

    **Differentiability:** smooth in ``env`` through the normalisation of ``pmf`` (the clamp of negative
    luminance aside) and in ``wi`` through ``sin(theta)``, piecewise: the texel is a discrete choice.
    :func:`envmap_sample_direct` returns this value *detached*.

    Example: a constant map is sampled nearly uniformly, ``pdf ~ 1 / (4 pi) ~ 0.0796``; at the equator of an
    8-row map ``sin(theta) = 1`` against ``sin(4.5 pi / 8) = 0.981`` at the row's centre::

        >>> round(envmap_pdf(torch.ones(8, 16, 3), torch.zeros(3), torch.tensor([1.0, 0.0, 0.0])).item(), 4)
        0.0775
    """
    batch = _check_env_args(env, ref_points, wi, "wi", 3)
    H, W = env.shape[:2]
    pmf = _env_pmf(env)
    d = wi / torch.linalg.vector_norm(wi, dim=-1, keepdim=True).clamp_min(1e-300)
    d = d.expand(batch + (3,))
    return _env_pdf(pmf, d, H, W)


def _env_pdf(pmf, d, H, W):
    uv = direction_to_equirect(d)
    i = (uv[..., 1] * H).long().clamp(0, H - 1)
    j = (uv[..., 0] * W).long().clamp(0, W - 1)
    sin_theta = (1.0 - d[..., 1] * d[..., 1]).clamp_min(_MIN_SIN * _MIN_SIN).sqrt()
    return (pmf[i, j] * (H * W) / (2 * math.pi * math.pi * sin_theta))[..., None]


def envmap_sample_direct(env: torch.Tensor, ref_points: torch.Tensor, u: torch.Tensor) -> DirectionSample:
    """Importance-sample an equirectangular environment map by luminance (a 2D CDF over its texels).

    ``u_0`` inverts the marginal CDF of rows (continuously: the remainder is the position inside the row), ``u_1``
    the conditional CDF of columns in that row; the point ``(u, v)`` is uniform inside the chosen texel and
    ``wi`` is its direction (``theta = pi v``, ``phi = 2 pi u``, :func:`lumigrad.shading.equirect_directions`).
    ``pdf`` is :func:`envmap_pdf` at ``wi`` and ``weight = envmap_lookup(env, wi) / pdf`` (the bilinear
    radiance the rasterizer shows as background).

    Args:
        env: the map, ``[H, W, C]``, linear radiance ``>= 0``.
        ref_points: ``[..., 3]`` shading points (only their batch shape matters).
        u: ``[..., 2]`` uniform numbers in [0, 1), broadcasting against ``ref_points``.

    Returns:
        :class:`DirectionSample` with ``distance = +inf`` and ``is_delta = False``.

    Raises:
        ValueError / TypeError: bad shapes, devices, NaN / Inf, ``u`` outside [0, 1].

    **Differentiability:** detached sampling, as Mitsuba's ``envmap``: ``wi`` and ``pdf`` are built from
    detached texels, and ``weight`` is differentiable w.r.t. ``env`` through the looked-up radiance only, so
    ``d/d env E[weight g(wi)] = E[(d weight / d env) g(wi)]`` (unbiased). ``pdf`` equals :func:`envmap_pdf` at
    ``wi`` in value, not in gradient.

    Example: a constant map of radiance 2 gives ``weight * pdf = 2`` for every sample::

        >>> s = envmap_sample_direct(torch.full((8, 16, 1), 2.0), torch.zeros(3), torch.tensor([0.3, 0.7]))
        >>> round((s.weight * s.pdf).item(), 5), s.distance.item()
        (2.0, inf)
    """
    batch = _check_env_args(env, ref_points, u, "u", 2)
    if u.numel() and bool(((u < 0) | (u > 1)).any()):
        raise ValueError(f"u must lie in [0, 1]; got values in [{float(u.min()):.9g}, {float(u.max()):.9g}]")
    H, W = env.shape[:2]
    pmf, row_cdf, cond_cdf = _env_table(env)
    uu = u.detach().expand(batch + (2,)).reshape(-1, 2).to(env.dtype)
    one = 1.0 - torch.finfo(env.dtype).eps
    i = torch.searchsorted(row_cdf, uu[:, :1].contiguous(), right=True)[:, 0].clamp(max=H - 1)
    lo = torch.where(i > 0, row_cdf[(i - 1).clamp_min(0)], torch.zeros_like(uu[:, 0]))
    fv = ((uu[:, 0] - lo) / (row_cdf[i] - lo).clamp_min(1e-300)).clamp(0.0, one)
    rows = cond_cdf[i]  # [P, W]
    j = torch.searchsorted(rows, uu[:, 1:].contiguous(), right=True)[:, 0].clamp(max=W - 1)
    lo = torch.where(j > 0, rows.gather(-1, (j - 1).clamp_min(0)[:, None])[:, 0], torch.zeros_like(uu[:, 1]))
    fu = ((uu[:, 1] - lo) / (rows.gather(-1, j[:, None])[:, 0] - lo).clamp_min(1e-300)).clamp(0.0, one)
    theta = math.pi * (i.to(env.dtype) + fv) / H
    phi = 2 * math.pi * (j.to(env.dtype) + fu) / W
    st = torch.sin(theta)
    wi = torch.stack([torch.sin(phi) * st, torch.cos(theta), -torch.cos(phi) * st], -1)
    pdf = _env_pdf(pmf, wi, H, W)
    radiance = envmap_lookup(env, wi)
    ok = pdf > 0
    weight = torch.where(ok, radiance / torch.where(ok, pdf, torch.ones_like(pdf)), torch.zeros_like(radiance))
    distance = torch.full((wi.shape[0],), math.inf, dtype=env.dtype, device=env.device)
    C = env.shape[-1]
    return DirectionSample(wi.reshape(batch + (3,)), distance.reshape(batch), weight.reshape(batch + (C,)),
                           pdf.reshape(batch + (1,)), False)
