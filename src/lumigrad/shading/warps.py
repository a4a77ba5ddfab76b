"""Sample warps: maps from uniform numbers in [0, 1)^2 to directions, with the densities they produce.

Elementwise PyTorch, any leading batch dims, no validation (the BSDFs and emitters that call them validate
at their boundary). Every warp is differentiable in its shape parameters (``alpha``, the triangle's vertices)
for a fixed ``u``: the reparameterisation that turns ``d/dtheta E[f(x(u, theta))]`` into ``E[d/dtheta f]``.

Conventions: a *local* frame has its normal along +z, so a direction ``w`` is above the surface when
``w.z > 0``; densities are per unit solid angle (1 / steradian).
"""

from __future__ import annotations

import math
from typing import Tuple

import torch

__all__ = [
    "local_frame",
    "to_local",
    "to_world",
    "cosine_hemisphere",
    "beckmann_normal",
    "ggx_visible_normal",
    "spherical_triangle",
    "spherical_triangle_solid_angle",
]

#: Floor of the arguments of square roots that can reach 0 (their derivative would be infinite there).
_SQRT_FLOOR = 1e-30


def _normalize(v: torch.Tensor) -> torch.Tensor:
    return v / (v * v).sum(-1, keepdim=True).clamp_min(_SQRT_FLOOR).sqrt()


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(-1, keepdim=True)


def local_frame(n: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Return unit tangents ``(t, b)`` that make ``(t, b, n)`` a right-handed orthonormal frame.

    Duff et al. 2017, "Building an orthonormal basis, revisited" (branchless, exact for unit ``n``)::

        s = sign(n_z),  a = -1 / (s + n_z),  c = n_x n_y a
        t = (1 + s n_x^2 a, s c, -s n_x),   b = (c, s + n_y^2 a, -n_y)

    Args:
        n: unit normals, ``[..., 3]``.

    Returns:
        ``(t [..., 3], b [..., 3])`` with ``t x b = n``.

    **Differentiability:** smooth in ``n`` except across ``n_z = 0`` where the sign flips (the frame turns
    about ``n``; isotropic BSDFs do not depend on it).

    Example:
        >>> t, b = local_frame(torch.tensor([0.0, 0.0, 1.0]))
        >>> t.tolist(), b.tolist()
        ([1.0, -0.0, -0.0], [-0.0, 1.0, -0.0])
    """
    x, y, z = n.unbind(-1)
    s = torch.copysign(torch.ones_like(z), z)
    a = -1.0 / (s + z)
    c = x * y * a
    t = torch.stack([1.0 + s * x * x * a, s * c, -s * x], -1)
    b = torch.stack([c, s + y * y * a, -y], -1)
    return t, b


def to_local(v: torch.Tensor, t: torch.Tensor, b: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """Coordinates ``[..., 3]`` of world vectors ``v`` in the frame ``(t, b, n)``."""
    return torch.cat([_dot(v, t), _dot(v, b), _dot(v, n)], -1)


def to_world(v: torch.Tensor, t: torch.Tensor, b: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """World vectors ``[..., 3]`` of local coordinates ``v`` in the frame ``(t, b, n)``."""
    return v[..., :1] * t + v[..., 1:2] * b + v[..., 2:] * n


def cosine_hemisphere(u: torch.Tensor) -> torch.Tensor:
    """Map ``u [..., 2]`` in [0, 1)^2 to local directions ``[..., 3]`` with density ``cos(theta) / pi``.

    Malley's method on the polar map of the unit disk: ``r = sqrt(u_0)``, ``phi = 2 pi u_1``,
    ``w = (r cos phi, r sin phi, sqrt(1 - u_0))``.

    **Differentiability:** smooth in ``u`` (not needed: nothing else shapes the lobe).

    Example:
        >>> cosine_hemisphere(torch.tensor([0.0, 0.0])).tolist()
        [0.0, 0.0, 1.0]
    """
    r = u[..., 0].sqrt()
    phi = 2 * math.pi * u[..., 1]
    z = (1.0 - u[..., 0]).clamp_min(_SQRT_FLOOR).sqrt()
    return torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], -1)


def beckmann_normal(alpha: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Sample a Beckmann microfacet normal with density ``D(h) h_z`` (Walter et al. 2007):
    ``tan^2(theta) = -alpha^2 log(1 - u_0)``, ``phi = 2 pi u_1``.

    Reflecting ``wo`` about ``h`` gives ``wi`` with density ``D(h) h_z / (4 |wo.h|)``; a normal facing away
    from ``wo`` (``wo.h <= 0``) reflects below the surface, an invalid sample.

    Args:
        alpha: Beckmann width, ``[..., 1]`` or a 0-dim tensor (broadcastable with ``u[..., :1]``), ``> 0``.
        u: uniform numbers, ``[..., 2]`` in [0, 1)^2.

    Returns:
        Local unit half vectors ``h [..., 3]`` with ``h_z > 0``.

    **Differentiability:** smooth in ``alpha`` for fixed ``u`` (``1 - u_0`` is floored at 1e-30).

    Example: ``u_0 = 0`` gives the normal::

        >>> beckmann_normal(torch.tensor([0.5]), torch.zeros(2))[2].item()
        1.0
    """
    tan2 = -(alpha * alpha) * torch.log((1.0 - u[..., :1]).clamp_min(_SQRT_FLOOR))  # [..., 1]
    cos = torch.rsqrt(1.0 + tan2)
    sin = (tan2 * cos * cos).clamp_min(_SQRT_FLOOR).sqrt()
    phi = 2 * math.pi * u[..., 1:]
    x, y, z = torch.broadcast_tensors(sin * torch.cos(phi), sin * torch.sin(phi), cos)
    return torch.cat([x, y, z], -1)


def ggx_visible_normal(wo: torch.Tensor, alpha: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Sample a GGX microfacet normal visible from ``wo``: Heitz 2018, "Sampling the GGX distribution of
    visible normals" (JCGT 7(4)).

    The density of the returned half vector ``h`` (per solid angle of ``h``) is the distribution of visible
    normals ``D_wo(h) = G1(wo) max(wo.h, 0) D(h) / wo_z``; reflecting ``wo`` about ``h`` gives
    ``wi = 2 (wo.h) h - wo`` with density ``D_wo(h) / (4 wo.h) = G1(wo) D(h) / (4 wo_z)``, where
    ``G1(wo) = 2 wo_z / (wo_z + sqrt(alpha^2 + (1 - alpha^2) wo_z^2))`` is Smith's masking term.

    Args:
        wo: local directions towards the viewer, ``[..., 3]``, unit, ``wo_z > 0`` for a meaningful result.
        alpha: GGX width, ``[..., 1]`` (or broadcastable), ``> 0``.
        u: uniform numbers, ``[..., 2]`` in [0, 1)^2.

    Returns:
        Local unit half vectors ``h [..., 3]`` with ``h_z >= 0``.

    **Differentiability:** smooth in ``wo`` and ``alpha`` for fixed ``u`` (a reparameterisation), with finite
    gradients everywhere (square roots are floored at 1e-30).

    Example: at normal incidence and ``u = (0, 0)`` the sample is the normal::

        >>> ggx_visible_normal(torch.tensor([0.0, 0.0, 1.0]), torch.tensor([0.5]), torch.zeros(2)).tolist()
        [0.0, 0.0, 1.0]
    """
    # Stretch the view direction to the hemisphere configuration of a unit-roughness surface.
    vh = _normalize(torch.cat([alpha * wo[..., :2], wo[..., 2:]], -1))
    lensq = vh[..., 0] ** 2 + vh[..., 1] ** 2
    has_t1 = lensq > 0
    inv = torch.where(has_t1, lensq, torch.ones_like(lensq)).rsqrt()
    zero = torch.zeros_like(lensq)
    t1 = torch.where(has_t1[..., None], torch.stack([-vh[..., 1] * inv, vh[..., 0] * inv, zero], -1),
                     torch.stack([torch.ones_like(lensq), zero, zero], -1))
    t2 = torch.linalg.cross(vh, t1, dim=-1)
    # A point on the projected hemisphere: a disk, its lower half squeezed by the view's foreshortening.
    r = u[..., 0].sqrt()
    phi = 2 * math.pi * u[..., 1]
    p1 = r * torch.cos(phi)
    p2 = r * torch.sin(phi)
    s = 0.5 * (1.0 + vh[..., 2])
    p2 = (1.0 - s) * (1.0 - p1 * p1).clamp_min(_SQRT_FLOOR).sqrt() + s * p2
    pz = (1.0 - p1 * p1 - p2 * p2).clamp_min(_SQRT_FLOOR).sqrt()
    nh = p1[..., None] * t1 + p2[..., None] * t2 + pz[..., None] * vh
    # Unstretch back to the surface of width alpha.
    return _normalize(torch.cat([alpha * nh[..., :2], nh[..., 2:].clamp_min(0.0)], -1))


def spherical_triangle_solid_angle(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Solid angle ``[..., 1]`` of the spherical triangle of unit vectors ``a, b, c [..., 3]``.

    Van Oosterom and Strackee 1983: ``tan(Omega / 2) = |a . (b x c)| / (1 + a.b + b.c + c.a)``.

    **Differentiability:** smooth in ``a, b, c`` away from degenerate (zero-area) triangles.

    Example: one octant of the sphere, ``4 pi / 8``::

        >>> round(spherical_triangle_solid_angle(*torch.eye(3)).item(), 6) == round(math.pi / 2, 6)
        True
    """
    triple = _dot(a, torch.linalg.cross(b, c, dim=-1))
    return 2 * torch.atan2(triple.abs(), 1 + _dot(a, b) + _dot(b, c) + _dot(c, a))


def spherical_triangle(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Sample a direction uniformly (by solid angle) in the spherical triangle ``a, b, c``: Arvo 1995,
    "Stratified sampling of spherical triangles".

    ``u_0`` chooses the sub-triangle ``a, b, c'`` of area ``u_0 Omega`` (``c'`` on the arc ``a c``) and ``u_1``
    a point on the arc from ``b`` to ``c'`` (with ``z = 1 - u_1 (1 - c'.b)``), which makes the map
    area-preserving: the density is ``1 / Omega`` (see :func:`spherical_triangle_solid_angle`).

    Args:
        a, b, c: unit vertex directions, ``[..., 3]``, either orientation, not degenerate (the caller skips
            triangles of zero solid angle).
        u: uniform numbers, ``[..., 2]`` in [0, 1)^2.

    Returns:
        Unit directions ``[..., 3]`` inside the triangle. Accuracy degrades for triangles of a tiny solid angle
        (the interior angles sum to ``pi + Omega``): use float64 for far-away or small lights.

    **Differentiability:** smooth in ``a, b, c`` for fixed ``u`` (a reparameterisation of uniform solid-angle
    sampling), away from degenerate triangles.

    Example: ``u = (0, 0)`` gives the vertex ``b`` (to rounding)::

        >>> d = spherical_triangle(*torch.eye(3, dtype=torch.float64), torch.zeros(2, dtype=torch.float64))
        >>> [round(x, 9) for x in d.tolist()]
        [0.0, 1.0, 0.0]
    """
    triple = _dot(a, torch.linalg.cross(b, c, dim=-1)).abs()
    ab, bc, ca = _dot(a, b), _dot(b, c), _dot(c, a)
    # Interior angles: at a between the planes (a, b) and (a, c), and so on.
    alpha = torch.atan2(triple, bc - ab * ca)
    beta = torch.atan2(triple, ca - bc * ab)
    gamma = torch.atan2(triple, ab - ca * bc)
    area = alpha + beta + gamma - math.pi
    sub_area = u[..., :1] * area
    s, t = torch.sin(sub_area - alpha), torch.cos(sub_area - alpha)
    cos_alpha, sin_alpha = torch.cos(alpha), torch.sin(alpha)
    p = t - cos_alpha
    q = s + sin_alpha * ab
    # cos of the arc from a to the new vertex c' on the arc a c.
    cos_b = ((q * t - p * s) * cos_alpha - q) / ((q * s + p * t) * sin_alpha)
    cos_b = cos_b.clamp(-1.0, 1.0)
    c_new = cos_b * a + (1.0 - cos_b * cos_b).clamp_min(_SQRT_FLOOR).sqrt() * _normalize(c - ca * a)
    z = 1.0 - u[..., 1:] * (1.0 - _dot(c_new, b))
    z = z.clamp(-1.0, 1.0)
    return z * b + (1.0 - z * z).clamp_min(_SQRT_FLOOR).sqrt() * _normalize(c_new - _dot(c_new, b) * b)
