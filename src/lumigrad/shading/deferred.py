"""Deferred shading of a G-buffer: direct lights plus environment lighting (SH diffuse, split-sum glossy).

The rasterizer produces per-pixel positions, normals and material inputs (``interpolate`` and
:func:`lumigrad.shading.sample_material`); these functions turn them into linear radiance. They are pure
functions of tensors, so every light parameter, material parameter, SH coefficient and environment texel
receives gradients.

The public functions take the G-buffer and the material dict of :func:`lumigrad.shading.sample_material`,
validate them, and pack them into one :class:`lumigrad.shading.SurfaceSample`; the cores
(``shade_direct_unchecked``, ``shade_environment_unchecked``) take that sample, and direct lights are
reflected by a :class:`lumigrad.shading.BSDF`'s ``eval`` (the glTF metallic-roughness one by default), the
same method a Monte Carlo integrator calls.
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

import torch
import torch.utils.checkpoint

from .._checks import check_all_finite, broadcast_batch, check_channels, check_number, check_tensor
from .brdf import f0_from_ior
from .bsdf import BSDF, MetallicRoughnessBSDF
from .envmap import envmap_lookup_unchecked, split_sum_lut
from ..kernels.direct_lights import KERNEL_DTYPES, MAX_CHANNELS, SpotCones, direct_lights
from .lights import MIN_LIGHT_DISTANCE, LightSample, PunctualLights, spot_cone
from .sh import sh_irradiance
from .surface import SurfaceSample, check_material_dict
from .delta_specular import eval_toward_delta_light
from .transmission import bsdf_for, is_gltf_ggx


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


def _check_gbuffer(position, normal, camera_position, material, mask) -> None:
    """Shapes, dtypes and devices of a G-buffer and its material (no host sync)."""
    check_tensor(position, "position", trailing=(3,), floating=True)
    device = position.device
    check_tensor(normal, "normal", trailing=(3,), floating=True, device=device)
    check_tensor(camera_position, "camera_position", trailing=(3,), floating=True, device=device)
    check_material_dict(material)
    check_tensor(material["base_color"], "material['base_color']", trailing=(None,), floating=True, device=device)
    check_channels(material["base_color"], "material['base_color']", "[..., C]")
    for key in ("roughness", "metallic", "occlusion"):
        if key in material:
            check_tensor(material[key], f"material[{key!r}]", trailing=(1,), floating=True, device=device)
    shapes = [("position", position), ("normal", normal), ("camera_position", camera_position)]
    shapes += [(f"material[{k!r}]", material[k]) for k in ("base_color", "roughness", "metallic", "occlusion")
               if k in material]
    batch, names = torch.Size(), []
    for name, t in shapes:
        batch = broadcast_batch(batch, " and ".join(names) or name, t.shape[:-1], name)
        names.append(name)
    if mask is not None:
        check_tensor(mask, "mask", device=device)
        if mask.dtype != torch.bool and not mask.is_floating_point():
            raise TypeError(f"mask must be a bool or float coverage tensor (e.g. frags.mask); got {mask.dtype}")
        m = tuple(mask.shape) if mask.dim() == len(batch) else tuple(mask.shape[:-1])
        try:
            fits = mask.dim() in (len(batch), len(batch) + 1) and torch.broadcast_shapes(m, batch) == batch
        except RuntimeError:
            fits = False
        if not fits:
            raise ValueError(f"mask must have shape {tuple(batch)} or {tuple(batch) + (1,)} (or broadcast to it); "
                             f"got {tuple(mask.shape)}")


def _material_tensors(material: dict):
    return [(f"material[{k!r}]", v) for k, v in material.items() if isinstance(v, torch.Tensor)]


def _check_isotropic(material: dict) -> None:
    """An anisotropic lobe (``log_aspect``) turns in a tangent frame, which a material dict cannot carry."""
    if "log_aspect" in material:
        raise ValueError("material has log_aspect (an anisotropic lobe, Material.roughness_aspect), which turns in "
                         "the surface's tangents: shade a SurfaceSample with its tangent (shade_direct_unchecked) or "
                         "render the scene (lumigrad.render)")


def _per_point(value, pixels: _Pixels):
    """A per-point value (``ior``, ``specular_f0``) on the shaded pixels; numbers and 0-dim tensors as they are."""
    return pixels.take(value) if isinstance(value, torch.Tensor) and value.dim() else value


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
    BRDF is recomputed in the backward pass, ``torch.utils.checkpoint``) plus the per-light samples. For
    point (ranged or not), spot and directional lights :func:`shade_punctual` gives the same in one fused pass,
    memory O(pixels).

    Raises:
        TypeError / ValueError: G-buffer tensors of the wrong shape, dtype or device, leading dims that do not
            broadcast, NaN / Inf, a material dict without ``base_color`` / ``roughness`` / ``metallic``, light
            samples that are not :class:`LightSample` or whose ``L`` channels do not match ``base_color``, an
            empty ``lights``, a non-bool ``mask``.

    **Differentiability:** w.r.t. every input and every light parameter behind the samples.
    """
    lights = list(lights)
    if not lights:
        raise ValueError("lights is empty: pass at least one light sample")
    _check_gbuffer(position, normal, camera_position, material, mask)
    _check_isotropic(material)
    for k, sample in enumerate(lights):
        if not isinstance(sample, LightSample):
            raise TypeError(f"lights[{k}] must be a LightSample (point_light(...) etc.); got {type(sample).__name__}")
        check_tensor(sample.wi, f"lights[{k}].wi", trailing=(3,), floating=True, device=position.device)
        check_tensor(sample.L, f"lights[{k}].L", trailing=(None,), floating=True, device=position.device)
        if sample.L.shape[-1] not in (1, material["base_color"].shape[-1]):
            raise ValueError(f"lights[{k}].L has {sample.L.shape[-1]} channels but base_color has "
                             f"{material['base_color'].shape[-1]}")
    check_all_finite([("position", position), ("normal", normal), ("camera_position", camera_position)]
                      + _material_tensors(material)
                      + [(f"lights[{k}].{n}", t) for k, smp in enumerate(lights) for n, t in
                         (("wi", smp.wi), ("L", smp.L))])
    surface = SurfaceSample.from_material(position, normal, camera_position - position, material)
    return shade_direct_unchecked(surface, lights, mask=mask)


def shade_direct_unchecked(surface: SurfaceSample, lights: Iterable[LightSample], *,
                           mask: Optional[torch.Tensor] = None, bsdf: Optional[BSDF] = None,
                           use_checkpoint: bool = True) -> torch.Tensor:
    """:func:`shade_direct` of a :class:`SurfaceSample` already validated (no checks, no host syncs): for
    pipelines such as :func:`lumigrad.render` that validate their inputs once at their own boundary.

    ``Lo = sum_lights bsdf.eval(si, wi) * L * max(n . wi, 0)`` (each sample a delta light: at opaque
    ``Material.delta_specular`` points ``bsdf.eval`` without its Dirac lobes) with ``bsdf`` the glTF
    metallic-roughness :class:`MetallicRoughnessBSDF` (with Mitsuba's models where ``surface`` marks them:
    :func:`bsdf_for`) unless given; ``surface.wo`` need not be unit. Returns ``[..., C]`` over
    ``surface``'s batch dims (zeros outside ``mask``). ``use_checkpoint=False`` keeps each light's BRDF
    intermediates instead of recomputing them in the backward pass: for callers that checkpoint a larger
    segment themselves (a nested checkpoint would keep its inputs, the per-light samples, alive with the graph).

    **Differentiability:** w.r.t. every tensor of ``surface`` the BSDF reads and every light sample.
    """
    if bsdf is None:  # the opaque glTF model, and Mitsuba's models and normal maps at the points they mark
        bsdf = bsdf_for(surface.replace(transmission=None))
    lights = list(lights)
    si = surface
    inputs = [si.position, si.normal, si.wo, si.base_color, si.roughness, si.metallic] + \
        [t for sample in lights for t in (sample.wi, sample.L)]
    pixels = _Pixels(inputs, mask)
    take = pixels.take
    n = take(si.normal)
    n = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    shaded = SurfaceSample(position=take(si.position), normal=n, wo=take(si.wo), base_color=take(si.base_color),
                           roughness=take(si.roughness), metallic=take(si.metallic), ior=_per_point(si.ior, pixels),
                           specular_f0=_per_point(si.specular_f0, pixels),
                           specular=_per_point(si.specular, pixels), beckmann=_per_point(si.beckmann, pixels),
                           plastic=_per_point(si.plastic, pixels), principled=_per_point(si.principled, pixels),
                           conductor=_per_point(si.conductor, pixels),
                           principled_lobes=_per_point(si.principled_lobes, pixels),
                           shadowing=_per_point(si.shadowing, pixels),
                           delta_specular=_per_point(_opaque_dirac(si), pixels),
                           unmapped_normal=_per_point(si.unmapped_normal, pixels),
                           tangent=_per_point(si.tangent, pixels), log_aspect=_per_point(si.log_aspect, pixels))
    checkpointed = use_checkpoint and torch.is_grad_enabled() and any(t.requires_grad for t in inputs + list(si.tensors().values()))
    total = None
    for sample in lights:
        args = (bsdf, shaded, take(sample.wi), take(sample.L))
        # Recompute each light's BRDF in the backward pass instead of storing its intermediates: memory stays
        # that of one light whatever their number.
        term = (torch.utils.checkpoint.checkpoint(_light_term, *args, use_reentrant=False) if checkpointed
                else _light_term(*args))
        total = term if total is None else total + term
    return pixels.put(total)


def _opaque_dirac(si: SurfaceSample) -> Optional[torch.Tensor]:
    """``si.delta_specular`` but at transmitting points: glass is shaded here as an opaque surface (a diffuse lobe
    the raster's environment light shades too), whose lobes are no Dirac lobes."""
    if si.delta_specular is None or si.transmission is None:
        return si.delta_specular
    return torch.where(si.transmission > 0, torch.zeros_like(si.delta_specular), si.delta_specular)


def _light_term(bsdf: BSDF, si: SurfaceSample, wi, L):
    """One delta light's reflected radiance ``f(wi, wo) L max(n . wi, 0)`` at ``[P]`` points (``si.normal`` unit;
    ``f`` without the Dirac lobes of ``Material.delta_specular`` points)."""
    f = eval_toward_delta_light(bsdf, si, wi)
    return f * L * (si.normal * wi).sum(-1, keepdim=True).clamp_min(0)


def shade_punctual(position: torch.Tensor, normal: torch.Tensor, camera_position: torch.Tensor, material: dict,
                   lights: PunctualLights, *, mask: Optional[torch.Tensor] = None, use_fused: bool = True
                   ) -> torch.Tensor:
    """Radiance ``[..., C]`` reflected towards the camera from point, spot and directional lights, all in one
    pass.

    The same value as :func:`shade_direct` of ``lights.samples(position)`` (glTF metallic-roughness BRDF, no
    shadows, ``Lo = sum_k f(wi_k, wo) L_k max(n . wi_k, 0)``), computed by one fused kernel that loops over
    the lights per pixel (:func:`lumigrad.kernels.direct_lights.direct_lights`) with a hand-written backward:
    time O(pixels x lights), memory O(pixels) whatever the number of lights (the PyTorch path keeps each
    light's ``[..., 3 + C]`` sample).

    Args:
        position, normal, camera_position, material, mask: as :func:`shade_direct`.
        lights: :class:`lumigrad.shading.PunctualLights` (``K`` lights), on ``position``'s device.
        use_fused: ``False`` forces the PyTorch reference (:func:`shade_direct` of the samples). The fused
            kernel also steps aside for dtypes other than float32 / float64 and more than 4 channels.

    Raises:
        TypeError / ValueError: as :func:`shade_direct`; ``lights`` not a valid :class:`PunctualLights`, or
            whose channels match neither 1 nor ``base_color``'s.

    **Differentiability:** w.r.t. the G-buffer, the material values (``ior``, ``specular_f0`` and ``specular``) and
    every float field of ``lights`` (``vector``, ``radiance``, ``range``, ``spot_direction``, both angles); zero
    below the horizon, where the BRDF's clamps are active, beyond a light's range and outside a spot's cone,
    exactly as the reference.
    """
    _check_gbuffer(position, normal, camera_position, material, mask)
    _check_isotropic(material)
    if not isinstance(lights, PunctualLights):
        raise TypeError(f"lights must be a PunctualLights (PunctualLights.of(...)); got {type(lights).__name__}")
    lights.validate()
    check_tensor(lights.vector, "lights.vector", device=position.device)
    if lights.radiance.shape[-1] not in (1, material["base_color"].shape[-1]):
        raise ValueError(f"lights.radiance has {lights.radiance.shape[-1]} channels but base_color has "
                         f"{material['base_color'].shape[-1]}")
    check_all_finite([("position", position), ("normal", normal), ("camera_position", camera_position)]
                     + _material_tensors(material))
    surface = SurfaceSample.from_material(position, normal, camera_position - position, material)
    return shade_punctual_unchecked(surface, lights, mask=mask, use_fused=use_fused)


def shade_punctual_unchecked(surface: SurfaceSample, lights: PunctualLights, *, mask: Optional[torch.Tensor] = None,
                             use_fused: bool = True, use_checkpoint: bool = True) -> torch.Tensor:
    """:func:`shade_punctual` of a validated :class:`SurfaceSample` with the glTF metallic-roughness BSDF (no
    checks). ``use_checkpoint`` is passed to :func:`shade_direct_unchecked` when the reference runs."""
    si = surface
    C = si.base_color.shape[-1]
    tensors = [si.position, si.normal, si.wo, si.base_color, si.roughness, si.metallic, lights.vector,
               lights.radiance]
    dtype = si.base_color.dtype
    fused = use_fused and dtype in KERNEL_DTYPES and C <= MAX_CHANNELS and all(t.dtype == dtype for t in tensors)
    if not fused or not is_gltf_ggx(si):
        # (the kernel's model is glTF's, GGX)
        return shade_direct_unchecked(si, lights.samples(si.position), mask=mask, use_checkpoint=use_checkpoint)
    pixels = _Pixels([si.position, si.normal, si.wo, si.base_color, si.roughness, si.metallic], mask)
    take = pixels.take
    base_color = take(si.base_color)
    P = base_color.shape[0]
    if si.specular_f0 is None:
        ior = torch.as_tensor(_per_point(si.ior, pixels), dtype=dtype, device=base_color.device)
        r = (ior - 1.0) / (ior + 1.0)
        f0 = r * r
    else:
        f0 = torch.as_tensor(_per_point(si.specular_f0, pixels), dtype=dtype, device=base_color.device)
    f0 = f0.expand(P, C) if f0.dim() else f0.reshape(1, 1).expand(P, C)
    specular = None
    if si.specular is not None:  # KHR_materials_specular's weight s: the kernel takes s f0 and s (see direct_lights)
        specular = torch.as_tensor(_per_point(si.specular, pixels), dtype=dtype, device=base_color.device)
        specular = specular.expand(P, 1) if specular.dim() else specular.reshape(1, 1).expand(P, 1)
        f0 = f0 * specular
    spot = None
    if lights.is_spot is not None:  # in float64, as the kernel's light table: offset + cd scale cancels
        scale, offset = spot_cone(lights.inner_angle.double(), lights.outer_angle.double())
        spot = SpotCones(lights.is_spot, lights.spot_direction, scale, offset)
    out = direct_lights(take(si.position).contiguous(), take(si.normal).contiguous(), take(si.wo).contiguous(),
                        base_color.contiguous(), take(si.roughness).contiguous(), take(si.metallic).contiguous(),
                        f0.contiguous(), lights.vector, lights.is_point, lights.radiance.expand(-1, C),
                        MIN_LIGHT_DISTANCE, spot=spot,
                        light_inv_range=None if lights.range is None else 1.0 / lights.range.double(),
                        points_only=lights.points_only, specular=specular)
    return pixels.put(out)


def shade_environment(position: torch.Tensor, normal: torch.Tensor, camera_position: torch.Tensor,
                      material: dict, *, sh_coeffs: Optional[torch.Tensor] = None,
                      prefiltered: Optional[torch.Tensor] = None,
                      prefiltered_roughness: Optional[Sequence[float]] = None,
                      mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Image-based lighting ``[..., C]``: diffuse from SH irradiance, specular by the split sum.

    * diffuse: ``(1 - metallic) (1 - s F0_d) c / pi * E(n)`` with ``E = sh_irradiance(n, sh_coeffs)`` and ``s``
      the specular weight (``material["specular"]``, ``KHR_materials_specular``; 1 when absent);
    * specular: ``prefiltered(r, roughness) * (F0 A + f90 B)`` with ``r`` the mirror direction, ``(A, B)`` from
      :func:`lumigrad.shading.split_sum_lut`, ``F0 = mix(s F0_d, c, metallic)``, ``f90 = mix(s, 1, metallic)``;
      the pre-filtered maps
      (``[R, h, w, C]`` from :func:`lumigrad.shading.prefilter_ggx` at ``prefiltered_roughness``) are
      interpolated linearly in roughness.

    Either term is skipped when its input is ``None``. Occlusion (``material["occlusion"]``) multiplies both;
    with ``mask`` only covered pixels are shaded, as in :func:`shade_direct`. The split sum is GGX's: a
    ``material["beckmann"]`` surface (``Material.microfacet = "beckmann"``) gets GGX's lobe of the same roughness
    here (an approximation; a path tracer evaluates Beckmann's).
    Raises:
        TypeError / ValueError: as :func:`shade_direct` for the G-buffer and material; ``prefiltered`` not
            ``[R, h, w, C]`` with texels, or with NaN / Inf; ``prefiltered_roughness`` not ``R`` finite,
            strictly increasing values in ``[0, 1]``.

    **Differentiability:** w.r.t. the G-buffer, the material, ``sh_coeffs`` and the pre-filtered texels
    (and through :func:`prefilter_ggx` the environment's texels).
    """
    _check_gbuffer(position, normal, camera_position, material, mask)
    named = [("position", position), ("normal", normal), ("camera_position", camera_position)]
    named += _material_tensors(material)
    if prefiltered is not None:
        check_tensor(prefiltered, "prefiltered", trailing=(None, None, None, None), max_dims=4, floating=True,
                     device=position.device)
        if 0 in prefiltered.shape[:3]:
            raise ValueError(f"prefiltered must have at least one map and texel; got {tuple(prefiltered.shape)}")
        if prefiltered.shape[-1] != material["base_color"].shape[-1]:
            raise ValueError(f"prefiltered has {prefiltered.shape[-1]} channels but base_color has "
                             f"{material['base_color'].shape[-1]}")
        if prefiltered_roughness is None or isinstance(prefiltered_roughness, (str, bytes)) or \
                len(prefiltered_roughness) != prefiltered.shape[0]:
            raise ValueError("prefiltered_roughness must list the roughness of each pre-filtered map")
        levels = [check_number(r, "prefiltered_roughness", lo=0.0, hi=1.0) for r in prefiltered_roughness]
        if levels != sorted(set(levels)):
            raise ValueError(f"prefiltered_roughness must be strictly increasing; got {levels}")
        named.append(("prefiltered", prefiltered))
    check_all_finite(named)
    surface = SurfaceSample.from_material(position, normal, camera_position - position, material)
    return shade_environment_unchecked(surface, sh_coeffs=sh_coeffs, prefiltered=prefiltered,
                                       prefiltered_roughness=prefiltered_roughness, mask=mask)


def shade_environment_unchecked(surface: SurfaceSample, *, sh_coeffs=None, prefiltered=None,
                                prefiltered_roughness=None, mask=None) -> torch.Tensor:
    """:func:`shade_environment` of a :class:`SurfaceSample` already validated (no checks, no host syncs for
    validation). ``surface.specular_f0``, when set, replaces the dielectric ``F0`` from ``surface.ior``."""
    si = surface
    pixels = _Pixels([si.position, si.normal, si.wo, si.base_color, si.roughness, si.metallic], mask)
    take = pixels.take
    n = take(si.normal)
    n = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    wo = take(si.wo)
    wo = wo / wo.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    c, rough, metal = take(si.base_color), take(si.roughness), take(si.metallic)
    if si.conductor is not None:  # Mitsuba's conductor is a pure metal (its metallic_factor is not read)
        metal = torch.where(take(si.conductor)[..., -1:] > 0.5, torch.ones_like(metal), metal)
    if si.specular_f0 is None:
        ior = _per_point(si.ior, pixels)
        f0_d = f0_from_ior(torch.as_tensor(ior, dtype=c.dtype, device=c.device))
    else:
        f0_d = _per_point(si.specular_f0, pixels)
    # KHR_materials_specular's weight s scales the dielectric's Fresnel (f0 and the split sum's f90 = 1 alike)
    s = 1.0 if si.specular is None else _per_point(si.specular, pixels)
    out = torch.zeros_like(c)
    if sh_coeffs is not None:
        E = sh_irradiance(n, sh_coeffs)
        out = out + (1 - metal) * (1 - s * f0_d) * c / torch.pi * E
    if prefiltered is not None:
        n_dot_v = (n * wo).sum(-1, keepdim=True).clamp(1e-4, 1)
        r = 2 * n_dot_v * n - wo
        levels = torch.as_tensor(list(prefiltered_roughness), dtype=c.dtype, device=c.device)
        # Linear interpolation between the two maps whose roughness brackets each pixel's.
        reads = torch.stack([envmap_lookup_unchecked(m, r) for m in prefiltered])  # [R, P, C]
        if len(levels) == 1:  # one map serves every roughness (no pair to interpolate between)
            radiance = reads[0]
        else:
            x = rough.clamp(float(levels[0]), float(levels[-1]))
            idx = torch.searchsorted(levels, x.detach().contiguous(), right=True).clamp(1, len(levels) - 1)
            lo, hi = levels[idx - 1], levels[idx]
            t = (x - lo) / (hi - lo)
            pick = lambda k: torch.gather(reads, 0, k.expand((1,) + reads.shape[1:]))[0]  # noqa: E731
            radiance = pick(idx[None] - 1) * (1 - t) + pick(idx[None]) * t
        ab = split_sum_lut(n_dot_v[..., 0], rough[..., 0].expand_as(n_dot_v[..., 0]))
        if si.specular is None:
            f0, f90 = (1 - metal) * f0_d + metal * c, 1.0
        else:
            f0, f90 = (1 - metal) * s * f0_d + metal * c, (1 - metal) * s + metal
        out = out + radiance * (f0 * ab[..., :1] + f90 * ab[..., 1:])
    if si.occlusion is not None:
        out = out * take(si.occlusion)
    return pixels.put(out)
