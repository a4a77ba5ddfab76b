"""Punctual lights (point, spot, directional) as pure, differentiable PyTorch functions.

Every light function takes world-space shading points ``x [..., 3]`` and returns a :class:`LightSample`
``(wi, L, distance)``:

* ``wi [..., 3]``: unit direction **from the shading point towards the light** (world space);
* ``L [..., C]``: the irradiance the light delivers on a surface *perpendicular* to ``wi``, so a BRDF ``f``
  reflects ``Lo = f(wi, wo) * L * max(dot(n, wi), 0)`` (a delta light needs no integral over directions);
* ``distance [...]``: distance from the point to the light, for shadow rays (``+inf`` for directional lights).

The same functions serve deferred raster shading (``x`` is a G-buffer of positions ``[..., H, W, 3]``) and
a ray tracer (``x`` is a batch of hit points ``[N, 3]``). Units and conventions follow glTF
``KHR_lights_punctual``: a point or spot light's ``intensity`` is in W/sr-like units (candela in glTF) and
falls off with the inverse square of the distance; a directional light's ``irradiance`` is in W/m^2-like
units (lux in glTF) and does not fall off. Angles are in radians.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional, Union

import torch

from .._checks import broadcast_batch, check_tensor

__all__ = ["LightSample", "MIN_LIGHT_DISTANCE", "PunctualLights", "SPOT_FALLOFFS", "directional_light", "point_light",
           "spot_light"]

#: Default lower clamp (scene units) on the point-to-light distance of point and spot lights. Below it the
#: inverse-square law is evaluated at this distance, so values and gradients stay finite at ``d -> 0``.
MIN_LIGHT_DISTANCE = 1e-4

# glTF's guard on the width of the spot's smooth band: 1 / max(0.001, cos(inner) - cos(outer)).
_SPOT_MIN_COS_BAND = 1e-3
#: The spot cone's falloff between its inner and outer angles: ``"gltf"`` (glTF ``KHR_lights_punctual``: the
#: square of a ramp in the cosine) or ``"linear"`` (Mitsuba 3's ``spot``: a ramp in the angle itself).
SPOT_FALLOFFS = ("gltf", "linear")
# Smallest band (radians) of the linear falloff: 1 / max(outer - inner, this); an equal pair gives a hard edge.
_SPOT_MIN_ANGLE_BAND = 1e-6
# |cd| is kept below 1 - this before acos, whose slope is infinite at +-1 (a zero times it is still 0).
_ACOS_MARGIN = 1e-6

Scalar = Union[float, torch.Tensor]


class LightSample(NamedTuple):
    """What a light delivers to a batch of shading points.

    Attributes:
        wi: ``[..., 3]`` unit direction from the point towards the light, world space.
        L: ``[..., C]`` irradiance on a surface perpendicular to ``wi`` (reflected radiance is
            ``f(wi, wo) * L * max(n . wi, 0)``).
        distance: ``[...]`` distance to the light, for shadow rays; ``+inf`` for directional lights.
    """

    wi: torch.Tensor
    L: torch.Tensor
    distance: torch.Tensor


class PunctualLights(NamedTuple):
    """``K`` point, spot and directional lights packed together, to shade all of them in one pass
    (:func:`lumigrad.shading.shade_punctual`) instead of one :class:`LightSample` ``[..., K]`` each.

    Attributes:
        vector: ``[K, 3]`` float, world space: a point or spot light's position, or the direction a directional
            light travels along (any non-zero length), as :func:`point_light` / :func:`directional_light` take
            them.
        is_point: ``[K]`` bool, True for point and spot lights, False for directional ones.
        radiance: ``[K, C]`` float, ``>= 0``: a point or spot light's intensity, a directional light's irradiance.
        range: ``[K]`` float, ``> 0``, ``inf`` for no range: the glTF range of point and spot lights
            (directional lights ignore it); None: no light has one.
        is_spot: ``[K]`` bool, True for spot lights (their ``is_point`` is True too); None: no spot light.
        spot_direction: ``[K, 3]`` the direction each spot light shines along, non-zero (any value for the
            other lights); with ``is_spot``.
        inner_angle, outer_angle: ``[K]`` the spot cones' half-angles (radians, ``0 <= inner <= outer <= pi/2``
            for spot lights, any finite value for the others); with ``is_spot``.
        points_only: host-side copy of ``bool(is_point.all())`` (:meth:`of` fills it), so that choosing the
            point-light kernels reads nothing back from the device; None: unknown (read when needed).

    Point and spot lights use the distance clamp ``MIN_LIGHT_DISTANCE``. Build one with :meth:`of`;
    :meth:`samples` gives the equivalent :class:`LightSample` list (the reference).

    Example: a point light of intensity 4 at ``(0, 2, 0)`` and the sun straight down::

        >>> lights = PunctualLights.of(points=[(torch.tensor([0.0, 2.0, 0.0]), torch.tensor([4.0]))],
        ...                            directionals=[(torch.tensor([0.0, -1.0, 0.0]), torch.tensor([3.0]))])
        >>> [s.L.tolist() for s in lights.samples(torch.zeros(3))]
        [[1.0], [3.0]]
    """

    vector: torch.Tensor
    is_point: torch.Tensor
    radiance: torch.Tensor
    range: Optional[torch.Tensor] = None  # noqa: A003 - glTF's name
    is_spot: Optional[torch.Tensor] = None
    spot_direction: Optional[torch.Tensor] = None
    inner_angle: Optional[torch.Tensor] = None
    outer_angle: Optional[torch.Tensor] = None
    points_only: Optional[bool] = None

    @classmethod
    def of(cls, points=(), directionals=(), spots=()) -> "PunctualLights":
        """Pack ``points`` (``(position [3], intensity [C])`` or ``(position, intensity, range)``), then ``spots``
        (``(position [3], direction [3], intensity [C], inner_angle, outer_angle)``, optionally ``range`` last),
        then ``directionals`` (``(direction [3], irradiance [C])``); the tensors keep their autograd graphs.
        A ``range`` is None (none), a float or a 0-dim tensor; the angles are floats or 0-dim tensors.

        Raises:
            ValueError: no light at all, or shapes that are not ``[3]`` / ``[C]`` with one ``C``.
        """
        rows = [(p[0], p[1], True, p[2] if len(p) > 2 else None, None) for p in points]
        rows += [(s[0], s[2], True, s[5] if len(s) > 5 else None, (s[1], s[3], s[4])) for s in spots]
        rows += [(d[0], d[1], False, None, None) for d in directionals]
        if not rows:
            raise ValueError("PunctualLights.of needs at least one point, spot or directional light")
        for k, (vec, rad, _, _, cone) in enumerate(rows):
            check_tensor(vec, f"light {k} position/direction", trailing=(3,), max_dims=1, floating=True)
            check_tensor(rad, f"light {k} intensity/irradiance", trailing=(None,), max_dims=1, floating=True,
                         device=vec.device)
            if cone is not None:
                check_tensor(cone[0], f"light {k} spot direction", trailing=(3,), max_dims=1, floating=True,
                             device=vec.device)
        if len({r[1].shape[-1] for r in rows}) > 1:
            raise ValueError(f"lights must share one number of channels; got {[r[1].shape[-1] for r in rows]}")
        vec0 = rows[0][0]
        fields = {}
        if any(r[3] is not None for r in rows):
            fields["range"] = torch.stack([_one_value(r[3], math.inf, f"light {k} range", vec0)
                                           for k, r in enumerate(rows)])
        if spots:
            fields["is_spot"] = torch.tensor([r[4] is not None for r in rows], device=vec0.device)
            fields["spot_direction"] = torch.stack([r[4][0] if r[4] else vec0.new_tensor([0.0, 0.0, -1.0])
                                                    for r in rows])
            fields["inner_angle"] = torch.stack([_one_value(r[4][1] if r[4] else None, 0.0,
                                                            f"light {k} inner angle", vec0)
                                                 for k, r in enumerate(rows)])
            fields["outer_angle"] = torch.stack([_one_value(r[4][2] if r[4] else None, math.pi / 4,
                                                            f"light {k} outer angle", vec0)
                                                 for k, r in enumerate(rows)])
        is_point = torch.tensor([r[2] for r in rows], device=vec0.device)
        return cls(torch.stack([r[0] for r in rows]), is_point, torch.stack([r[1] for r in rows]), **fields,
                   points_only=all(r[2] for r in rows))

    def validate(self) -> "PunctualLights":
        """Check shapes, finiteness, non-negative radiance, non-zero directions, positive ranges and the spot
        cones' angles; return ``self``.

        Raises:
            TypeError / ValueError: naming the field.
        """
        check_tensor(self.vector, "lights.vector", trailing=(3,), max_dims=2, floating=True, finite=True)
        K = self.vector.shape[0]
        if K == 0:
            raise ValueError("lights is empty: pass at least one light")
        device = self.vector.device
        _check_flags(self.is_point, "lights.is_point", K, device)
        if self.points_only is not None and self.points_only != bool(self.is_point.all()):
            raise ValueError(f"lights.points_only is {self.points_only} but lights.is_point says otherwise")
        check_tensor(self.radiance, "lights.radiance", trailing=(None,), max_dims=2, floating=True, finite=True,
                     device=device)
        if self.radiance.shape[0] != K:
            raise ValueError(f"lights.radiance must have shape ({K}, C); got {tuple(self.radiance.shape)}")
        _check_radiometric(self.radiance, "lights.radiance", device)
        zero = (self.vector.detach().abs().amax(-1) == 0) & ~self.is_point
        if bool(zero.any()):
            raise ValueError("lights.vector of a directional light must have non-zero length; got a zero vector")
        if self.range is not None:
            _check_per_light(self.range, "lights.range", K, device)
            if bool((self.range.detach() <= 0).any() | self.range.detach().isnan().any()):
                raise ValueError("lights.range must be positive (inf for no range)")
        cone = (self.spot_direction, self.inner_angle, self.outer_angle)
        if self.is_spot is None:
            if any(t is not None for t in cone):
                raise ValueError("lights.spot_direction / inner_angle / outer_angle need lights.is_spot")
            return self
        _check_flags(self.is_spot, "lights.is_spot", K, device)
        if any(t is None for t in cone):
            raise ValueError("lights.is_spot needs lights.spot_direction, inner_angle and outer_angle")
        if bool((self.is_spot & ~self.is_point).any()):
            raise ValueError("lights.is_spot marks a directional light (is_point False)")
        check_tensor(self.spot_direction, "lights.spot_direction", trailing=(3,), max_dims=2, floating=True,
                     finite=True, device=device)
        if self.spot_direction.shape[0] != K:
            raise ValueError(f"lights.spot_direction must have shape ({K}, 3); got "
                             f"{tuple(self.spot_direction.shape)}")
        if bool(((self.spot_direction.detach().abs().amax(-1) == 0) & self.is_spot).any()):
            raise ValueError("lights.spot_direction of a spot light must have non-zero length; got a zero vector")
        inner, outer = self.inner_angle, self.outer_angle
        _check_per_light(inner, "lights.inner_angle", K, device, finite=True)
        _check_per_light(outer, "lights.outer_angle", K, device, finite=True)
        bad = ((inner.detach() < 0) | (outer.detach() > math.pi / 2) | (inner.detach() > outer.detach())) & \
            self.is_spot
        if bool(bad.any()):
            raise ValueError("lights.inner_angle and lights.outer_angle of spot lights must satisfy "
                             "0 <= inner_angle <= outer_angle <= pi/2 (glTF spot limits)")
        return self

    def samples(self, x: torch.Tensor) -> list:
        """The :class:`LightSample` of each light at points ``x [..., 3]`` (no checks): the PyTorch reference
        of the fused shading."""
        K = self.vector.shape[0]
        finite = [False] * K if self.range is None else torch.isfinite(self.range).tolist()
        spot = [False] * K if self.is_spot is None else self.is_spot.tolist()
        out = []
        for k, (v, p, r) in enumerate(zip(self.vector, self.is_point.tolist(), self.radiance)):
            rng = self.range[k] if finite[k] else None
            if spot[k]:
                out.append(spot_light_unchecked(x, v, self.spot_direction[k], r, self.inner_angle[k],
                                                self.outer_angle[k], range=rng))
            elif p:
                out.append(point_light_unchecked(x, v, r, range=rng))
            else:
                out.append(directional_light_unchecked(x, v, r))
        return out


def _check_flags(flags: torch.Tensor, name: str, K: int, device) -> None:
    check_tensor(flags, name, max_dims=1, device=device)
    if flags.dtype != torch.bool or flags.shape != (K,):
        raise ValueError(f"{name} must be a bool tensor of shape ({K},); got {flags.dtype} {tuple(flags.shape)}")


def _check_per_light(t: torch.Tensor, name: str, K: int, device, finite: bool = False) -> None:
    check_tensor(t, name, max_dims=1, floating=True, finite=finite, device=device)
    if t.shape != (K,):
        raise ValueError(f"{name} must have shape ({K},); got {tuple(t.shape)}")


def check_spot_falloff(falloff) -> str:
    """``falloff`` if it is one of :data:`SPOT_FALLOFFS`, else a ``ValueError`` naming the argument."""
    if not isinstance(falloff, str) or falloff not in SPOT_FALLOFFS:
        raise ValueError(f"falloff must be one of {SPOT_FALLOFFS}; got {falloff!r}")
    return falloff


def spot_cone(inner_angle: torch.Tensor, outer_angle: torch.Tensor):
    """``(scale, offset)`` of glTF's spot cone: ``a = clamp(cd * scale + offset, 0, 1)^2`` with
    ``scale = 1 / max(0.001, cos(inner) - cos(outer))`` and ``offset = -cos(outer) * scale`` (differentiable)."""
    cos_outer = torch.cos(outer_angle)
    scale = 1.0 / (torch.cos(inner_angle) - cos_outer).clamp_min(_SPOT_MIN_COS_BAND)
    return scale, -cos_outer * scale


def point_light(
    x: torch.Tensor,
    position: torch.Tensor,
    intensity: torch.Tensor,
    *,
    range: Optional[Scalar] = None,  # noqa: A002 - glTF's name
    min_distance: float = MIN_LIGHT_DISTANCE,
) -> LightSample:
    """Light shading points with a point light (inverse-square falloff, glTF ``KHR_lights_punctual``).

    With ``v = position - x``, ``d = max(|v|, min_distance)``::

        wi = v / d,     L = intensity * window(d) / d^2,     window(d) = clamp(1 - (d / range)^4, 0, 1)

    and ``window = 1`` without ``range`` (glTF's recommended range attenuation).

    Args:
        x: shading points, ``[..., 3]``, float, world space.
        position: light position, ``[..., 3]`` (usually ``[3]``), float, world space; broadcast against ``x``.
        intensity: radiant intensity, ``[..., C]`` (usually ``[C]``, e.g. RGB), float, ``>= 0``, W/sr-like units.
        range: optional distance (float or broadcastable float tensor, ``> 0``) beyond which the light is cut
            off smoothly by the window above; ``None`` (glTF's default) means infinite.
        min_distance: lower clamp on ``d`` (scene units). For ``|v| < min_distance``, ``wi = v / min_distance``
            is shorter than 1 (zero at the light itself) and ``L = intensity / min_distance^2``.

    Returns:
        :class:`LightSample` ``(wi [B, 3], L [B, C], distance [B])`` where ``B`` is the broadcast of the batch
        dims of all inputs and ``distance`` is the clamped ``d``.

    Raises:
        ValueError: wrong shapes, NaN/Inf values, negative ``intensity`` or non-positive ``range``.

    **Differentiability:** smooth in ``x``, ``position``, ``intensity`` and ``range`` (a tensor ``range``
    gets gradients; the window has a kink where ``d = range``). Inside ``min_distance`` the gradient of ``d``
    is zero and that of ``wi`` is ``1 / min_distance``: finite, never NaN.

    Example: a light of intensity 4 at ``(0, 2, 0)`` seen from the origin: ``d = 2``, ``L = 4 / 2^2 = 1``::

        >>> s = point_light(torch.zeros(3), torch.tensor([0.0, 2.0, 0.0]), torch.tensor([4.0]))
        >>> s.wi.tolist(), s.L.tolist(), s.distance.item()
        ([0.0, 1.0, 0.0], [1.0], 2.0)
    """
    device = _check_point(x)
    check_tensor(position, "position", trailing=(3,), floating=True, finite=True, device=device)
    _check_radiometric(intensity, "intensity", device)
    rng = None if range is None else _positive_scalar(range, "range", x)
    return point_light_unchecked(x, position, intensity, range=rng, min_distance=min_distance)


def point_light_unchecked(x: torch.Tensor, position: torch.Tensor, intensity: torch.Tensor, *,
                          range: Optional[Scalar] = None,  # noqa: A002
                          min_distance: float = MIN_LIGHT_DISTANCE) -> LightSample:
    """:func:`point_light` on validated inputs (a light checked when it was built; ``range`` a positive
    number, tensor or None): the shapes are still matched, the values are not read."""
    batch = _batch(x, "x", position, "position", intensity, "intensity",
                   range if isinstance(range, torch.Tensor) else None, "range")
    wi, d = towards_point(x, position, min_distance)
    L = intensity * _falloff(d, range)[..., None]
    return _sample(wi, L, d, batch)


def spot_light(
    x: torch.Tensor,
    position: torch.Tensor,
    direction: torch.Tensor,
    intensity: torch.Tensor,
    inner_angle: Scalar = 0.0,
    outer_angle: Scalar = math.pi / 4,
    *,
    range: Optional[Scalar] = None,  # noqa: A002 - glTF's name
    min_distance: float = MIN_LIGHT_DISTANCE,
    falloff: str = "gltf",
) -> LightSample:
    """Light shading points with a spot light: a point light masked by a cone with a soft edge.

    With ``wi``, ``d`` and ``window`` as in :func:`point_light`, ``s = direction / |direction|`` the cone
    axis (the way the light shines) and ``cd = dot(s, -wi)`` the cosine between the axis and the
    light-to-point direction, glTF ``KHR_lights_punctual`` gives::

        scale  = 1 / max(0.001, cos(inner_angle) - cos(outer_angle))
        offset = -cos(outer_angle) * scale
        a      = clamp(cd * scale + offset, 0, 1)^2
        L      = intensity * a * window(d) / d^2

    so points within ``inner_angle`` of the axis get the full point-light value, points beyond
    ``outer_angle`` get 0, and ``a`` rises smoothly (quadratically in ``cd``) in between. With
    ``falloff="linear"`` the edge is Mitsuba 3's ``spot`` (``inner_angle`` its ``beam_width``, ``outer_angle`` its
    ``cutoff_angle``): ``a = clamp((outer_angle - acos(cd)) / max(outer_angle - inner_angle, 1e-6), 0, 1)``, a
    ramp in the angle itself.

    Args:
        x: shading points, ``[..., 3]``, float, world space.
        position: light position, ``[..., 3]``, float, world space.
        direction: direction the light shines (travels) along, ``[..., 3]``, float, world space, any non-zero
            length (normalised here). A glTF spot node shines along its local -z.
        intensity: radiant intensity on the axis, ``[..., C]``, float, ``>= 0``, W/sr-like units.
        inner_angle: half-angle (radians) of the full-intensity cone; float or broadcastable tensor
            ``[...]``. glTF default 0.
        outer_angle: half-angle (radians) where the light reaches zero; glTF default ``pi / 4``. Requires
            ``0 <= inner_angle <= outer_angle <= pi / 2`` (glTF's limits).
        range: optional cut-off distance, as in :func:`point_light`.
        min_distance: lower clamp on the distance, as in :func:`point_light`.
        falloff: ``"gltf"`` (default) or ``"linear"`` (Mitsuba's), :data:`SPOT_FALLOFFS`.

    Returns:
        :class:`LightSample` ``(wi [B, 3], L [B, C], distance [B])``.

    Raises:
        ValueError: wrong shapes, NaN/Inf, negative ``intensity``, zero-length ``direction``, angles out of
            order or range, non-positive ``range``, an unknown ``falloff``.

    **Differentiability:** differentiable in ``x``, ``position``, ``direction``, ``intensity``, both angles
    (when given as tensors) and ``range``. The gradient is zero outside the outer cone and inside the inner
    cone w.r.t. the angles and ``direction``. ``L`` is continuous everywhere; its gradient is continuous at the
    outer edge (``a`` has zero slope there) and jumps at the inner edge (glTF's clamp to 1). When
    ``cos(inner) - cos(outer) < 0.001`` the band width is clamped (glTF), and the angles get gradients only
    through ``offset``. The linear falloff's slope jumps at both edges; on the axis itself (``|cd| > 1 - 1e-6``)
    its gradient w.r.t. ``cd`` is 0 (``acos`` is vertical there), never NaN.

    Example: axis pointing down -y from ``(0, 1, 0)``, cones 0.2 and 0.4 rad: the origin lies on the axis
    (full intensity, ``L = 2 / 1^2``), the point ``(1, 0, 0)`` is 45 degrees off axis (dark)::

        >>> x = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
        >>> s = spot_light(x, torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.0, -1.0, 0.0]),
        ...                torch.tensor([2.0]), 0.2, 0.4)
        >>> s.L.tolist()
        [[2.0], [0.0]]
    """
    device = _check_point(x)
    check_tensor(position, "position", trailing=(3,), floating=True, finite=True, device=device)
    s = _unit_direction(direction, "direction", device)
    _check_radiometric(intensity, "intensity", device)
    inner = _scalar(inner_angle, "inner_angle", x)
    outer = _scalar(outer_angle, "outer_angle", x)
    if bool((inner < 0).any()) or bool((outer > math.pi / 2).any()):
        raise ValueError("inner_angle and outer_angle must lie in [0, pi/2] (glTF spot limits); got "
                         f"inner_angle={_show(inner)}, outer_angle={_show(outer)}")
    if bool((inner > outer).any()):
        raise ValueError(f"inner_angle must be <= outer_angle; got inner_angle={_show(inner)} > "
                         f"outer_angle={_show(outer)}")
    rng = None if range is None else _positive_scalar(range, "range", x)
    return _spot_light(x, position, s, intensity, inner, outer, rng, min_distance, check_spot_falloff(falloff))


def spot_light_unchecked(x: torch.Tensor, position: torch.Tensor, direction: torch.Tensor,
                         intensity: torch.Tensor, inner_angle: torch.Tensor, outer_angle: torch.Tensor, *,
                         range: Optional[Scalar] = None,  # noqa: A002
                         min_distance: float = MIN_LIGHT_DISTANCE, falloff: str = "gltf") -> LightSample:
    """:func:`spot_light` on validated inputs (a light checked when it was built): the shapes are still
    matched, the values are not read (``direction`` is normalised here, its length taken as non-zero)."""
    s = direction / torch.linalg.vector_norm(direction, dim=-1, keepdim=True)
    return _spot_light(x, position, s, intensity, inner_angle, outer_angle, range, min_distance, falloff)


def spot_cone_factor(cd: torch.Tensor, inner: torch.Tensor, outer: torch.Tensor, falloff: str) -> torch.Tensor:
    """The cone's factor ``a`` of :func:`spot_light` at the cosines ``cd`` between the axis and the
    light-to-point directions (differentiable, ``falloff`` one of :data:`SPOT_FALLOFFS`)."""
    if falloff == "linear":
        theta = torch.acos(cd.clamp(-1.0 + _ACOS_MARGIN, 1.0 - _ACOS_MARGIN))
        return ((outer - theta) / (outer - inner).clamp_min(_SPOT_MIN_ANGLE_BAND)).clamp(0.0, 1.0)
    scale, offset = spot_cone(inner, outer)
    return (cd * scale + offset).clamp(0.0, 1.0).square()


def _spot_light(x, position, s, intensity, inner, outer, rng, min_distance, falloff) -> LightSample:
    batch = _batch(x, "x", position, "position", s, "direction", intensity, "intensity", inner, "inner_angle",
                   outer, "outer_angle", rng if isinstance(rng, torch.Tensor) else None, "range")
    wi, d = towards_point(x, position, min_distance)
    a = spot_cone_factor(-(wi * s).sum(-1), inner, outer, falloff)
    L = intensity * (a * _falloff(d, rng))[..., None]
    return _sample(wi, L, d, batch)


def directional_light(x: torch.Tensor, direction: torch.Tensor, irradiance: torch.Tensor) -> LightSample:
    """Light shading points with a directional (distant) light of constant irradiance.

    ``direction`` is the way the light **travels** (glTF: a directional light node shines along its local
    -z), so the direction towards the light is its opposite::

        wi = -direction / |direction|,     L = irradiance,     distance = +inf

    Args:
        x: shading points, ``[..., 3]``, float, world space; only their batch shape, dtype and device matter.
        direction: direction of travel of the light, ``[..., 3]``, float, any non-zero length.
        irradiance: irradiance on a surface facing the light, ``[..., C]``, float, ``>= 0``, W/m^2-like units.

    Returns:
        :class:`LightSample` ``(wi [B, 3], L [B, C], distance [B])`` with ``distance = +inf``.

    Raises:
        ValueError: wrong shapes, NaN/Inf, negative ``irradiance`` or zero-length ``direction``.

    **Differentiability:** ``wi`` is differentiable in ``direction`` (through the normalisation), ``L`` is the
    identity in ``irradiance``; nothing depends on ``x``.

    Example: sunlight travelling straight down::

        >>> s = directional_light(torch.zeros(2, 3), torch.tensor([0.0, -2.0, 0.0]), torch.tensor([3.0]))
        >>> s.wi[0].tolist() == [0.0, 1.0, 0.0], s.L.tolist(), s.distance.tolist()
        (True, [[3.0], [3.0]], [inf, inf])
    """
    device = _check_point(x)
    s = _unit_direction(direction, "direction", device)
    _check_radiometric(irradiance, "irradiance", device)
    return _directional_light(x, s, irradiance)


def directional_light_unchecked(x: torch.Tensor, direction: torch.Tensor, irradiance: torch.Tensor) -> LightSample:
    """:func:`directional_light` on validated inputs (a light checked when it was built): the shapes are
    still matched, the values are not read (``direction`` is normalised here, its length taken as non-zero)."""
    return _directional_light(x, direction / torch.linalg.vector_norm(direction, dim=-1, keepdim=True), irradiance)


def _directional_light(x: torch.Tensor, s: torch.Tensor, irradiance: torch.Tensor) -> LightSample:
    batch = _batch(x, "x", s, "direction", irradiance, "irradiance")
    wi = -s
    dist = torch.full((), math.inf, dtype=wi.dtype, device=x.device)
    return _sample(wi, irradiance, dist, batch)


# --------------------------------------------------------------------------------------------------------------
# helpers


def _check_point(x: torch.Tensor) -> torch.device:
    check_tensor(x, "x", trailing=(3,), floating=True, finite=True)
    return x.device


def _check_radiometric(value: torch.Tensor, name: str, device) -> None:
    check_tensor(value, name, trailing=(None,), floating=True, finite=True, device=device)
    if bool((value < 0).any()):
        raise ValueError(f"{name} must be non-negative; got minimum {float(value.detach().min())}")


def _unit_direction(direction: torch.Tensor, name: str, device) -> torch.Tensor:
    check_tensor(direction, name, trailing=(3,), floating=True, finite=True, device=device)
    norm = torch.linalg.vector_norm(direction, dim=-1, keepdim=True)
    if bool((norm <= 0).any()):
        raise ValueError(f"{name} must have non-zero length; got a zero vector")
    return direction / norm


def _scalar(value: Scalar, name: str, like: torch.Tensor) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        check_tensor(value, name, floating=True, finite=True, device=like.device)
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float or a float tensor; got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name} contains NaN or Inf values")
    return torch.tensor(float(value), dtype=like.dtype, device=like.device)


def _one_value(value, default: float, name: str, like: torch.Tensor) -> torch.Tensor:
    """``value`` (a number, a one-element tensor, or None for ``default``) as a 0-dim tensor like ``like``;
    ValueError naming ``name`` for a tensor of several values (its range / angle checks come in ``validate``)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a single value; got shape {tuple(value.shape)}")
        return value.reshape(()).to(like)
    return torch.tensor(default if value is None else float(value), dtype=like.dtype, device=like.device)


def _positive_scalar(value: Scalar, name: str, like: torch.Tensor) -> torch.Tensor:
    t = _scalar(value, name, like)
    if bool((t <= 0).any()):
        raise ValueError(f"{name} must be positive; got {_show(t)}")
    return t


def _show(t: torch.Tensor):
    return t.item() if t.numel() == 1 else tuple(t.shape)


def _batch(*pairs) -> torch.Size:
    """Broadcast the batch dims of (tensor, name) pairs; vectors drop their last dim, scalars keep all dims."""
    batch, names = torch.Size(), []
    vector_names = {"x", "position", "direction", "intensity", "irradiance"}
    for t, name in zip(pairs[::2], pairs[1::2]):
        if t is None:
            continue
        shape = t.shape[:-1] if name in vector_names else t.shape
        batch = broadcast_batch(batch, " and ".join(names) or "x", shape, name)
        names.append(name)
    return batch


def towards_point(x: torch.Tensor, position: torch.Tensor, min_distance: float):
    """``wi = v / d`` and ``d = max(|v|, min_distance)`` with ``v = position - x``; finite gradients at v = 0."""
    if isinstance(min_distance, bool) or not isinstance(min_distance, (int, float)) or not min_distance > 0 \
            or not math.isfinite(min_distance):
        raise ValueError(f"min_distance must be a positive finite float; got {min_distance!r}")
    v = position - x
    d = (v * v).sum(-1).clamp_min(min_distance * min_distance).sqrt()
    return v / d[..., None], d


def _falloff(d: torch.Tensor, rng: Optional[torch.Tensor]) -> torch.Tensor:
    """glTF attenuation: ``clamp(1 - (d / range)^4, 0, 1) / d^2`` (window 1 without ``range``)."""
    inv_sq = 1.0 / (d * d)
    if rng is None:
        return inv_sq
    return (1.0 - (d / rng) ** 4).clamp(0.0, 1.0) * inv_sq


def _sample(wi: torch.Tensor, L: torch.Tensor, d: torch.Tensor, batch: torch.Size) -> LightSample:
    return LightSample(wi.expand(*batch, 3), L.expand(*batch, L.shape[-1]), d.expand(batch))
