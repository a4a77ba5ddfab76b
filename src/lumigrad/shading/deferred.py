"""Deferred shading of a G-buffer: direct lights plus environment lighting (SH diffuse, split-sum glossy).

The rasterizer produces per-pixel positions, normals and material inputs (``interpolate`` and
:func:`lumigrad.shading.sample_material`); these functions turn them into linear radiance. They are pure
functions of tensors, so every light parameter, material parameter, SH coefficient and environment texel
receives gradients.
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

import torch
import torch.utils.checkpoint

from .brdf import f0_from_ior, metallic_roughness
from .envmap import envmap_lookup, split_sum_lut
from .lights import LightSample
from .sh import sh_irradiance


class _Pixels:
    """The G-buffer pixels to shade, flattened to ``[P, c]``: all of them, or only the covered ones.

    ``batch`` is the broadcast of the inputs' leading dims; with a coverage ``mask`` (``[...]`` or ``[..., 1]``)
    only its covered pixels are taken, and :meth:`put` scatters results back with zeros elsewhere.
    """

    def __init__(self, tensors, mask: Optional[torch.Tensor]):
        self.batch = torch.broadcast_shapes(*[t.shape[:-1] for t in tensors])
        self.index = None
        if mask is not None:
            m = mask if mask.dim() == len(self.batch) else mask[..., 0]
            self.index = m.expand(self.batch).reshape(-1).nonzero()[:, 0]

    def take(self, t: torch.Tensor) -> torch.Tensor:
        t = t.expand(self.batch + t.shape[-1:]).reshape(-1, t.shape[-1])
        return t if self.index is None else t.index_select(0, self.index)

    def put(self, values: torch.Tensor) -> torch.Tensor:
        if self.index is not None:
            values = values.new_zeros(self.batch.numel(), values.shape[-1]).index_copy(0, self.index, values)
        return values.reshape(self.batch + values.shape[-1:])


def _ior(material: dict, pixels: _Pixels):
    ior = material.get("ior", 1.5)
    return pixels.take(ior) if isinstance(ior, torch.Tensor) and ior.dim() else ior


def shade_direct(position: torch.Tensor, normal: torch.Tensor, camera_position: torch.Tensor,
                 material: dict, lights: Iterable[LightSample], *, mask: Optional[torch.Tensor] = None
                 ) -> torch.Tensor:
    """Radiance ``[..., C]`` reflected towards the camera from delta lights (no shadows).

    ``Lo = sum_lights f(wi, wo) * L * max(n . wi, 0)`` with the glTF metallic-roughness BRDF
    (:func:`lumigrad.shading.metallic_roughness`), ``wo`` from each point to ``camera_position [..., 3]``.

    Args:
        position, normal: ``[..., 3]`` world-space G-buffer (normals need not be normalized).
        camera_position: camera centre(s), broadcasting against ``position``'s leading dims
            (e.g. ``[N, 1, 1, 3]`` for N views).
        material: dict with ``base_color [..., C]``, ``roughness [..., 1]``, ``metallic [..., 1]`` and
            optionally ``ior``, as returned by :func:`lumigrad.shading.sample_material`.
        lights: light samples evaluated at ``position`` (``point_light(position, ...)`` etc.).
        mask: optional coverage ``[...]`` or ``[..., 1]`` (e.g. ``frags.mask``): only covered pixels are
            shaded; background pixels (whose G-buffer normals are zero) give 0.

    Cost: O(covered pixels x lights). Memory of the backward pass: one light's intermediates (each light's
    BRDF is recomputed in the backward pass, ``torch.utils.checkpoint``) plus the per-light samples.

    **Differentiability:** w.r.t. every input and every light parameter behind the samples.
    """
    lights = list(lights)
    if not lights:
        raise ValueError("lights is empty: pass at least one light sample")
    inputs = [position, normal, camera_position, material["base_color"], material["roughness"],
              material["metallic"]] + [t for sample in lights for t in (sample.wi, sample.L)]
    pixels = _Pixels(inputs, mask)
    take = pixels.take
    n = take(normal)
    n = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    wo = take(camera_position) - take(position)
    base, rough, metal = take(material["base_color"]), take(material["roughness"]), take(material["metallic"])
    ior = _ior(material, pixels)
    checkpointed = torch.is_grad_enabled() and any(t.requires_grad for t in inputs)
    total = None
    for sample in lights:
        args = (n, take(sample.wi), wo, base, rough, metal, take(sample.L))
        # Recompute each light's BRDF in the backward pass instead of storing its intermediates: memory stays
        # that of one light whatever their number.
        term = (torch.utils.checkpoint.checkpoint(_light_term, *args, ior, use_reentrant=False) if checkpointed
                else _light_term(*args, ior))
        total = term if total is None else total + term
    return pixels.put(total)


def _light_term(n, wi, wo, base, rough, metal, L, ior):
    """One delta light's reflected radiance ``f(wi, wo) L max(n . wi, 0)`` at ``[P]`` points (``n`` unit)."""
    f = metallic_roughness(n, wi, wo, base, rough, metal, ior=ior)
    return f * L * (n * wi).sum(-1, keepdim=True).clamp_min(0)


def shade_environment(position: torch.Tensor, normal: torch.Tensor, camera_position: torch.Tensor,
                      material: dict, *, sh_coeffs: Optional[torch.Tensor] = None,
                      prefiltered: Optional[torch.Tensor] = None,
                      prefiltered_roughness: Optional[Sequence[float]] = None,
                      mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Image-based lighting ``[..., C]``: diffuse from SH irradiance, specular by the split sum.

    * diffuse: ``(1 - metallic) (1 - F0_d) c / pi * E(n)`` with ``E = sh_irradiance(n, sh_coeffs)``;
    * specular: ``prefiltered(r, roughness) * (F0 A + B)`` with ``r`` the mirror direction, ``(A, B)`` from
      :func:`lumigrad.shading.split_sum_lut`, ``F0 = mix(F0_d, c, metallic)``; the pre-filtered maps
      (``[R, h, w, C]`` from :func:`lumigrad.shading.prefilter_ggx` at ``prefiltered_roughness``) are
      interpolated linearly in roughness.

    Either term is skipped when its input is ``None``. Occlusion (``material["occlusion"]``) multiplies both;
    with ``mask`` only covered pixels are shaded, as in :func:`shade_direct`.
    **Differentiability:** w.r.t. the G-buffer, the material, ``sh_coeffs`` and the pre-filtered texels
    (and through :func:`prefilter_ggx` the environment's texels).
    """
    pixels = _Pixels([position, normal, camera_position, material["base_color"], material["roughness"],
                      material["metallic"]], mask)
    take = pixels.take
    n = take(normal)
    n = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    wo = take(camera_position) - take(position)
    wo = wo / wo.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    c, rough, metal = take(material["base_color"]), take(material["roughness"]), take(material["metallic"])
    ior = _ior(material, pixels)
    f0_d = f0_from_ior(torch.as_tensor(ior, dtype=c.dtype, device=c.device))
    out = torch.zeros_like(c)
    if sh_coeffs is not None:
        E = sh_irradiance(n, sh_coeffs)
        out = out + (1 - metal) * (1 - f0_d) * c / torch.pi * E
    if prefiltered is not None:
        if prefiltered_roughness is None or len(prefiltered_roughness) != prefiltered.shape[0]:
            raise ValueError("prefiltered_roughness must list the roughness of each pre-filtered map")
        n_dot_v = (n * wo).sum(-1, keepdim=True).clamp(1e-4, 1)
        r = 2 * n_dot_v * n - wo
        levels = torch.as_tensor(list(prefiltered_roughness), dtype=c.dtype, device=c.device)
        # Linear interpolation between the two maps whose roughness brackets each pixel's.
        reads = torch.stack([envmap_lookup(m, r) for m in prefiltered])  # [R, P, C]
        x = rough.clamp(float(levels[0]), float(levels[-1]))
        idx = torch.searchsorted(levels, x.detach().contiguous(), right=True).clamp(1, len(levels) - 1)
        lo, hi = levels[idx - 1], levels[idx]
        t = (x - lo) / (hi - lo)
        pick = lambda k: torch.gather(reads, 0, k.expand((1,) + reads.shape[1:]))[0]  # noqa: E731
        radiance = pick(idx[None] - 1) * (1 - t) + pick(idx[None]) * t
        ab = split_sum_lut(n_dot_v[..., 0], rough[..., 0].expand_as(n_dot_v[..., 0]))
        f0 = (1 - metal) * f0_d + metal * c
        out = out + radiance * (f0 * ab[..., :1] + ab[..., 1:])
    if "occlusion" in material:
        out = out * take(material["occlusion"])
    return pixels.put(out)
