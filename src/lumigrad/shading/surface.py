"""``SurfaceSample``: what shading knows about a surface point, typed (geometry, view and material values).

A renderer fills one per shading point (a G-buffer pixel of the rasterizer, a ray hit of a path tracer) and
hands it to a :class:`lumigrad.shading.BSDF` and to the deferred shading cores. It replaces the dict of
string keys (``material["base_color"]`` ...) with named, documented fields.

Conventions (``docs/conventions.md``): world space; every direction points **away** from the surface
(``normal`` on the side the surface is lit and seen from, ``wo`` towards the viewer, a BSDF's ``wi`` towards
the light); colours are channel-last ``[..., C]`` and per-point scalars ``[..., 1]`` (or a number where
noted), all broadcasting against the batch dims ``[...]`` of ``position``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Union

import torch

from .._checks import broadcast_batch, check_tensor

__all__ = ["SurfaceSample", "check_material_dict"]

#: Fields holding a per-point value of the material (as :func:`lumigrad.shading.sample_material` returns them).
MATERIAL_FIELDS = ("base_color", "alpha", "metallic", "roughness", "occlusion", "emission", "ior", "specular_f0",
                   "transmission", "specular", "beckmann", "thin", "plastic", "principled", "principled_lobes", "conductor",
                   "shadowing", "delta_specular", "log_aspect")
#: Fields that must be set.
_REQUIRED = ("position", "normal", "wo", "base_color", "roughness", "metallic")
#: Trailing size of each optional tensor field (``None``: any number of channels).
_TRAILING = {"position": 3, "normal": 3, "wo": 3, "base_color": None, "roughness": 1, "metallic": 1, "alpha": 1,
             "occlusion": 1, "emission": None, "ior": 1, "specular_f0": None, "geometric_normal": 3, "uv": 2,
             "tangent": 4, "unmapped_normal": 3, "transmission": 1, "specular": 1, "beckmann": 1, "thin": 1,
             "plastic": 66, "principled": 1, "principled_lobes": 6, "conductor": 7, "shadowing": 1,
             "delta_specular": 1, "log_aspect": 1}
#: Closed ranges of the material values that :meth:`SurfaceSample.validate` enforces.
_RANGES = {"base_color": (0.0, 1.0), "roughness": (0.0, 1.0), "metallic": (0.0, 1.0), "alpha": (0.0, 1.0),
           "specular_f0": (0.0, 1.0), "occlusion": (0.0, None), "emission": (0.0, None), "transmission": (0.0, 1.0),
           "specular": (0.0, 1.0), "beckmann": (0.0, 1.0), "thin": (0.0, 1.0), "principled": (0.0, 1.0),
           "principled_lobes": (0.0, 1.0), "conductor": (0.0, None), "shadowing": (0.0, 1.0),
           "delta_specular": (0.0, 1.0)}


@dataclass
class SurfaceSample:
    """One batch of shading points: geometry, view direction and the material's values there.

    Attributes:
        position: ``[..., 3]`` world-space points.
        normal: ``[..., 3]`` shading normals (after normal mapping; flipped towards the viewer on double-sided
            surfaces), pointing away from the surface. Need not be unit: shading normalises them.
        wo: ``[..., 3]`` directions from the point towards the viewer (the camera centre minus ``position`` for
            the rasterizer, minus the ray direction for a path tracer). Need not be unit: shading normalises
            them (so the raster path keeps its exact arithmetic).
        base_color: ``[..., C]`` linear base colour in [0, 1] (glTF ``baseColor``: albedo of the diffuse layer,
            ``f0`` of the metal).
        roughness: ``[..., 1]`` perceptual roughness in [0, 1] (GGX ``alpha = roughness^2``).
        metallic: ``[..., 1]`` metalness in [0, 1].
        alpha: optional ``[..., 1]`` coverage of the base colour's alpha channel (unused by shading: opaque).
        occlusion: optional ``[..., 1]`` ambient occlusion, multiplies environment lighting.
        emission: optional ``[..., C]`` emitted radiance (added by the renderer, not by the BSDF).
        ior: index of refraction of the dielectric layer, a number or ``[..., 1]`` (glTF default 1.5, ``f0 = 0.04``).
        specular_f0: optional ``[..., 1]`` or ``[..., C]`` dielectric normal-incidence reflectance replacing the
            one from ``ior`` (``KHR_materials_specular``).
        geometric_normal: optional ``[..., 3]`` normal of the underlying triangle (a path tracer uses it to
            reject light leaks of normal maps; the rasterizer does not set it).
        uv: optional ``[..., 2]`` texture coordinates.
        tangent: optional ``[..., 4]`` tangent ``xyz`` and handedness ``w`` (glTF ``TANGENT``); the bitangent is
            ``w * cross(normal, tangent)``.
        unmapped_normal: optional ``[..., 3]`` the shading normal before normal mapping (a path tracer keeps a
            sample bent by a normal map on its side too: it must not leave through the surface).
        transmission: optional ``[..., 1]`` in [0, 1], the fraction of the dielectric base that is a rough
            dielectric interface (glTF ``KHR_materials_transmission``, ``Material.transmission_factor``). Only
            :class:`lumigrad.shading.MetallicRoughnessTransmissionBSDF` reads it (see
            :func:`lumigrad.shading.bsdf_for`); ``MetallicRoughnessBSDF`` and the rasterizer shade the surface as
            opaque. A transmissive surface's ``normal`` must point to the exterior (not be flipped towards
            the viewer): ``wo`` may come from inside.
        specular: optional ``[..., 1]`` in [0, 1], the weight of the dielectric layer's specular coat (glTF
            ``KHR_materials_specular``'s ``specularFactor``, ``Material.specular_factor``); ``None`` is 1.
        beckmann: optional ``[..., 1]``, 1 where the specular lobes have Beckmann's microfacet distribution
            (``Material.microfacet = "beckmann"``, Mitsuba's default), 0 where GGX's; ``None`` is GGX everywhere.
        thin: optional ``[..., 1]``, 1 where the transmitting fraction is a thin dielectric sheet
            (``Material.thin_dielectric``, Mitsuba's ``thindielectric``): read by
            :class:`lumigrad.shading.MetallicRoughnessTransmissionBSDF`; ``None`` is 0 everywhere.
        plastic: optional ``[..., 66]``, the table of a ``Material.plastic`` point (:mod:`lumigrad.shading.plastic`:
            its interface's transmittance at 64 cosines, its internal reflectance, and 1), zeros elsewhere;
            ``None``: no point is.
        principled: optional ``[..., 1]``, 1 where the point is Mitsuba's principled BSDF
            (``Material.principled``: :mod:`lumigrad.shading.principled`), 0 elsewhere; ``None``: no point is.
        principled_lobes: optional ``[..., 6]``, a principled point's ``spec_tint``, ``sheen``, ``sheen_tint``,
            ``clearcoat``, ``clearcoat_gloss`` and ``flatness`` (``Material.principled_lobes``), zeros elsewhere;
            ``None``: all 0.
        conductor: optional ``[..., 7]``, a conductor point's complex index of refraction ``eta`` (3) and ``k``
            (3) and a 1 (``Material.conductor_eta`` and ``conductor_k``: :mod:`lumigrad.shading.conductor`), zeros
            elsewhere; ``None``: no point is.
        shadowing: optional ``[..., 1]``, 1 where the point's normal map is Mitsuba's, shadowing grazing light
            (``Material.mitsuba_normal_map``: :mod:`lumigrad.shading.normal_shadowing`; read with
            ``unmapped_normal``), 0 elsewhere; ``None``: no point is.
        delta_specular: optional ``[..., 1]``, 1 where the point's specular lobes are Dirac lobes that delta
            lights do not reach (``Material.delta_specular``: :mod:`lumigrad.shading.delta_specular`), 0
            elsewhere; ``None``: no point is.
        log_aspect: optional ``[..., 1]``, the log of the point's lobe aspect (``Material.roughness_aspect``: widths
            ``alpha / aspect`` along ``tangent`` and ``alpha aspect`` across it, :mod:`lumigrad.shading.anisotropy`),
            0 on isotropic points; ``None``: every lobe is isotropic. Read with ``tangent``.

    Construction checks types, trailing sizes, dtypes, devices and that the batch dims broadcast, without
    reading values (no host sync, so a renderer may build one per frame on CUDA). :meth:`validate` checks
    the values (finite, in range) once, at a public boundary.

    **Differentiability:** a container; every tensor keeps its autograd graph.

    Example:
        >>> z = torch.tensor([[0.0, 0.0, 1.0]])
        >>> si = SurfaceSample(position=torch.zeros(1, 3), normal=z, wo=z, base_color=torch.full((1, 3), 0.5),
        ...                    roughness=torch.full((1, 1), 0.5), metallic=torch.zeros(1, 1))
        >>> tuple(si.batch_shape), si.channels
        ((1,), 3)
    """

    position: torch.Tensor
    normal: torch.Tensor
    wo: torch.Tensor
    base_color: torch.Tensor
    roughness: torch.Tensor
    metallic: torch.Tensor
    alpha: Optional[torch.Tensor] = None
    occlusion: Optional[torch.Tensor] = None
    emission: Optional[torch.Tensor] = None
    ior: Union[float, torch.Tensor] = 1.5
    specular_f0: Optional[torch.Tensor] = None
    geometric_normal: Optional[torch.Tensor] = None
    uv: Optional[torch.Tensor] = None
    tangent: Optional[torch.Tensor] = None
    unmapped_normal: Optional[torch.Tensor] = None
    transmission: Optional[torch.Tensor] = None
    specular: Optional[torch.Tensor] = None
    beckmann: Optional[torch.Tensor] = None
    thin: Optional[torch.Tensor] = None
    plastic: Optional[torch.Tensor] = None
    principled: Optional[torch.Tensor] = None
    principled_lobes: Optional[torch.Tensor] = None
    conductor: Optional[torch.Tensor] = None
    shadowing: Optional[torch.Tensor] = None
    delta_specular: Optional[torch.Tensor] = None
    log_aspect: Optional[torch.Tensor] = None

    def __post_init__(self):
        check_tensor(self.position, "position", trailing=(3,), floating=True)
        device = self.position.device
        batch, names = self.position.shape[:-1], "position"
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "position" or value is None:
                continue
            if f.name == "ior" and isinstance(value, (int, float)) and not isinstance(value, bool):
                continue
            trailing = _TRAILING[f.name]
            if f.name in ("ior", "specular_f0") and isinstance(value, torch.Tensor) and value.dim() == 0:
                continue  # one value for every point
            check_tensor(value, f.name, trailing=(trailing,), floating=True, device=device)
            if trailing is None and value.shape[-1] == 0:
                raise ValueError(f"{f.name} must have at least one channel; got shape {tuple(value.shape)}")
            batch = broadcast_batch(batch, names, value.shape[:-1], f.name)
            names += f" and {f.name}"
        colours = [(k, getattr(self, k).shape[-1]) for k in ("base_color", "emission")
                   if getattr(self, k) is not None and getattr(self, k).shape[-1] != 1]
        if len({c for _, c in colours}) > 1:
            raise ValueError(f"base_color and emission must have the same channels; got "
                             f"{', '.join(f'{k} {c}' for k, c in colours)}")

    @classmethod
    def from_material(cls, position: torch.Tensor, normal: torch.Tensor, wo: torch.Tensor,
                      material: Dict[str, torch.Tensor], **geometry) -> "SurfaceSample":
        """Build a sample from a G-buffer and the per-pixel material values of
        :func:`lumigrad.shading.sample_material` (a dict with ``base_color``, ``roughness``, ``metallic`` and
        optionally ``alpha``, ``occlusion``, ``emission``, ``ior``, ``specular_f0``, ``transmission``,
        ``specular``, ``beckmann``, ``thin``, ``plastic``, ``principled``, ``principled_lobes``, ``conductor``,
        ``shadowing``, ``delta_specular``, ``log_aspect``).

        Other keys are ignored (``normal_tangent`` is consumed before, by
        :func:`lumigrad.shading.perturb_normal`); ``geometry`` sets ``geometric_normal``, ``uv`` or ``tangent``.

        Raises:
            TypeError: ``material`` not a dict.
            ValueError: a missing ``base_color`` / ``roughness`` / ``metallic``, or what the constructor refuses.
        """
        check_material_dict(material)
        values = {k: material[k] for k in MATERIAL_FIELDS if k in material}
        return cls(position=position, normal=normal, wo=wo, **values, **geometry)

    @property
    def batch_shape(self) -> torch.Size:
        """The broadcast batch dims ``[...]`` of every tensor field."""
        shapes = [v.shape[:-1] for v in self.tensors().values() if v.dim() > 0]
        return torch.broadcast_shapes(*shapes)

    @property
    def channels(self) -> int:
        """Colour channels ``C`` of ``base_color``."""
        return self.base_color.shape[-1]

    def tensors(self) -> Dict[str, torch.Tensor]:
        """The fields that are tensors, by name."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if isinstance(getattr(self, f.name), torch.Tensor)}

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "SurfaceSample":
        """A new sample with ``fn`` applied to every tensor field of at least one dim (``ior`` numbers and
        0-dim tensors stay), e.g. ``si.map(lambda t: t[mask])`` or an ``index_select`` of pixels."""
        return dataclasses.replace(self, **{k: fn(v) for k, v in self.tensors().items() if v.dim() > 0})

    def replace(self, **changes) -> "SurfaceSample":
        """A copy with ``changes`` (``dataclasses.replace``), e.g. ``si.replace(wo=wi)`` to swap directions."""
        return dataclasses.replace(self, **changes)

    def validate(self) -> "SurfaceSample":
        """Check the values once: finite everywhere, material values in range, non-zero ``normal`` and ``wo``.

        One host sync for all fields. Returns ``self``.

        Raises:
            ValueError: naming the first field with NaN / Inf, a value out of range (``base_color``,
                ``roughness``, ``metallic``, ``alpha``, ``specular_f0``, ``transmission``, ``specular`` in [0,
                1]; ``occlusion``, ``emission``
                ``>= 0``; ``ior > 0``) or a zero-length ``normal`` / ``wo``.
        """
        named = [(k, v) for k, v in self.tensors().items() if v.numel() and v.device.type != "meta"]
        if not named:
            return self
        ok = torch.stack([torch.isfinite(v).all() for _, v in named]).tolist()
        if not all(ok):
            raise ValueError(f"{named[ok.index(False)][0]} contains NaN or Inf values")
        tensors = dict(named)
        checks = []
        for key, (lo, hi) in _RANGES.items():
            if key in tensors:
                v = tensors[key].detach()
                bad = v < lo if hi is None else (v < lo) | (v > hi)
                checks.append((f"{key} must be {'>= ' + str(lo) if hi is None else f'in [{lo}, {hi}]'}",
                               key, bad.any()))
        if "ior" in tensors:
            checks.append(("ior must be > 0", "ior", (tensors["ior"].detach() <= 0).any()))
        for key in ("normal", "wo"):
            if key in tensors:
                checks.append((f"{key} must have non-zero length everywhere", key,
                               (tensors[key].detach().abs().amax(-1) == 0).any()))
        bad = torch.stack([c[2] for c in checks]).tolist() if checks else []
        for (message, key, _), b in zip(checks, bad):
            if b and key in ("normal", "wo"):
                raise ValueError(f"{message}; got a zero vector")
            if b:  # the error path may sync again to say what came
                v = tensors[key].detach()
                raise ValueError(f"{message}; got values in [{float(v.min()):.9g}, {float(v.max()):.9g}]")
        if isinstance(self.ior, (int, float)) and not self.ior > 0:
            raise ValueError(f"ior must be > 0; got {self.ior}")
        return self


def check_material_dict(material) -> None:
    """Raise unless ``material`` is a dict with at least ``base_color``, ``roughness`` and ``metallic`` (the
    per-pixel values :func:`lumigrad.shading.sample_material` returns); their tensors are not checked here."""
    if not isinstance(material, dict):
        raise TypeError(f"material must be a dict of per-pixel tensors (sample_material(...)); got "
                        f"{type(material).__name__}")
    for key in ("base_color", "roughness", "metallic"):
        if key not in material:
            raise ValueError(f"material has no {key!r}; it needs base_color, roughness and metallic "
                             "(sample_material(...) returns them)")
