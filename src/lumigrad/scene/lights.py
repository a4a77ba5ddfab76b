"""Scene lights: thin containers that hold a light's tensors and call the functional lights in ``shading``.

Each direct light has ``samples(x) -> List[LightSample]`` for :func:`lumigrad.shading.shade_direct`;
environment lights give SH coefficients (diffuse) and pre-filtered maps (glossy) for
:func:`lumigrad.shading.shade_environment`. ``parameters()`` names every tensor, for :class:`Scene`.

For Monte Carlo integrators every light but :class:`SHLight` is also a :class:`lumigrad.shading.Emitter`:
``sample_direct(ref_points, u)``, ``eval(ref_points, wi)``, ``pdf(ref_points, wi)`` and ``is_delta``
(functional ops in :mod:`lumigrad.shading.emitters`). Point, spot and directional lights return their delta
sample; area lights sample by solid angle (or by area) and environment lights by luminance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import ClassVar, Dict, List, Optional, Sequence, Tuple, Union

import torch

from .._checks import (check_channels, check_mesh, check_number, check_positive_int, check_tensor,
                       check_texture_layout)
from ..limits import check_pixel_samples
from ..shading.area_light import area_light_unchecked, check_samples_per_face
from ..shading.emitters import (DirectionSample, area_light_eval, area_light_pdf, area_light_sample_direct,
                                delta_direction_sample, envmap_pdf, envmap_sample_direct)
from ..shading.envmap import check_env_size, envmap_lookup, prefilter_ggx
from ..shading.lights import (LightSample, check_spot_falloff, directional_light_unchecked, point_light_unchecked,
                              spot_light_unchecked)
from ..shading.sh import sh_project_equirect

__all__ = ["AreaLight", "DirectionalLight", "EnvironmentLight", "Light", "PointLight", "SHLight", "SpotLight"]


def _as_tensor(value, like: Optional[torch.Tensor] = None) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    dtype = like.dtype if like is not None else torch.get_default_dtype()
    return torch.tensor(value, dtype=dtype, device=like.device if like is not None else None)


def _check_nonnegative(value: torch.Tensor, name: str, like: torch.Tensor) -> torch.Tensor:
    """A finite, non-negative float tensor on ``like``'s device (checked once, when the light is built)."""
    check_tensor(value, name, floating=True, finite=True, device=like.device)
    if value.numel() and bool((value < 0).any()):
        raise ValueError(f"{name} must be non-negative; got minimum {float(value.detach().min())}")
    return value


def _check_colour(value: torch.Tensor, name: str, like: torch.Tensor) -> torch.Tensor:
    check_tensor(value, name, trailing=(None,), floating=True, device=like.device)
    check_channels(value, name, "[C]")
    return _check_nonnegative(value, name, like)


def _check_direction(value: torch.Tensor, name: str, like: torch.Tensor) -> torch.Tensor:
    check_tensor(value, name, trailing=(3,), floating=True, finite=True, device=like.device)
    if bool((value.detach().abs().amax(-1) == 0).any()):
        raise ValueError(f"{name} must have non-zero length; got a zero vector")
    return value


def _check_range(value) -> Optional[float]:
    return None if value is None else check_number(value, "range", lo=0.0, lo_open=True)


class _TensorFields:
    """``parameters()`` for dataclasses: every tensor field by name."""

    def parameters(self) -> Dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), torch.Tensor)}


def _emitter_batch(ref_points: torch.Tensor, wi: torch.Tensor, like: torch.Tensor) -> torch.Size:
    """Batch dims of an emitter query (structural checks only, no host sync)."""
    check_tensor(ref_points, "ref_points", trailing=(3,), floating=True, device=like.device)
    check_tensor(wi, "wi", trailing=(3,), floating=True, device=like.device)
    try:
        return torch.broadcast_shapes(ref_points.shape[:-1], wi.shape[:-1])
    except RuntimeError:
        raise ValueError(f"wi has batch dims {tuple(wi.shape[:-1])}, which do not broadcast with ref_points' "
                         f"{tuple(ref_points.shape[:-1])}") from None


class _DeltaEmitter:
    """The :class:`lumigrad.shading.Emitter` methods of a delta light (point, spot, directional)."""

    is_delta: ClassVar[bool] = True

    def sample_direct(self, ref_points: torch.Tensor, u: Optional[torch.Tensor] = None) -> DirectionSample:
        """The light's one delta sample at ``ref_points [..., 3]`` (``u`` is unused): ``weight`` is the
        irradiance ``L`` of :meth:`samples`, ``pdf = 1``, ``is_delta = True``."""
        return delta_direction_sample(self.samples(ref_points)[0])

    def eval(self, ref_points: torch.Tensor, wi: torch.Tensor) -> torch.Tensor:
        """Zeros ``[..., C]``: no direction hits a delta light."""
        batch = _emitter_batch(ref_points, wi, self.color)
        return self.color.new_zeros(batch + self.color.shape[-1:])

    def pdf(self, ref_points: torch.Tensor, wi: torch.Tensor) -> torch.Tensor:
        """Zeros ``[..., 1]``: BSDF sampling never picks a delta light's direction."""
        batch = _emitter_batch(ref_points, wi, self.color)
        return self.color.new_zeros(batch + (1,))


@dataclass
class PointLight(_TensorFields, _DeltaEmitter):
    """A point light (glTF ``KHR_lights_punctual`` "point"): ``intensity * color`` W/sr-like, inverse square."""

    position: torch.Tensor
    intensity: torch.Tensor = 1.0
    color: torch.Tensor = (1.0, 1.0, 1.0)
    range: Optional[float] = None  # noqa: A003 - glTF's name

    def __post_init__(self):
        self.position = check_tensor(_as_tensor(self.position), "position", trailing=(3,), floating=True,
                                     finite=True)
        self.intensity = _check_nonnegative(_as_tensor(self.intensity, self.position), "intensity", self.position)
        self.color = _check_colour(_as_tensor(self.color, self.position), "color", self.position)
        self.range = _check_range(self.range)

    def samples(self, x: torch.Tensor) -> List[LightSample]:
        return [point_light_unchecked(x, self.position, self.intensity[..., None] * self.color, range=self.range)]


@dataclass
class SpotLight(_TensorFields, _DeltaEmitter):
    """A spot light: a point light inside a cone with a soft edge between the two angles (radians).

    ``falloff`` shapes the edge (:func:`lumigrad.shading.spot_light`): ``"gltf"`` (glTF's, the default) or
    ``"linear"`` (Mitsuba 3's ``spot``, a ramp in the angle, which the Mitsuba reader sets)."""

    position: torch.Tensor
    direction: torch.Tensor
    intensity: torch.Tensor = 1.0
    color: torch.Tensor = (1.0, 1.0, 1.0)
    inner_angle: torch.Tensor = 0.0
    outer_angle: torch.Tensor = math.pi / 4
    range: Optional[float] = None  # noqa: A003
    falloff: str = "gltf"

    def __setattr__(self, name, value):
        if name == "falloff":  # checked whenever it is set
            value = check_spot_falloff(value)
        super().__setattr__(name, value)

    def __post_init__(self):
        self.position = check_tensor(_as_tensor(self.position), "position", trailing=(3,), floating=True,
                                     finite=True)
        for name in ("direction", "intensity", "color", "inner_angle", "outer_angle"):
            setattr(self, name, _as_tensor(getattr(self, name), self.position))
        _check_direction(self.direction, "direction", self.position)
        _check_nonnegative(self.intensity, "intensity", self.position)
        _check_colour(self.color, "color", self.position)
        inner = _check_nonnegative(self.inner_angle, "inner_angle", self.position)
        outer = _check_nonnegative(self.outer_angle, "outer_angle", self.position)
        if bool((outer > math.pi / 2).any()):
            raise ValueError(f"outer_angle must lie in [0, pi/2] (glTF spot limits); got {outer.tolist()}")
        if bool((inner > outer).any()):
            raise ValueError(f"inner_angle must be <= outer_angle (the full-intensity cone lies inside the cone "
                             f"where the light fades out); got inner_angle={inner.tolist()} > "
                             f"outer_angle={outer.tolist()}")
        self.range = _check_range(self.range)

    def samples(self, x: torch.Tensor) -> List[LightSample]:
        return [spot_light_unchecked(x, self.position, self.direction, self.intensity[..., None] * self.color,
                                     self.inner_angle, self.outer_angle, range=self.range, falloff=self.falloff)]


@dataclass
class DirectionalLight(_TensorFields, _DeltaEmitter):
    """A distant light shining along ``direction`` with ``irradiance * color`` (W/m^2-like, lux in glTF)."""

    direction: torch.Tensor
    irradiance: torch.Tensor = 1.0
    color: torch.Tensor = (1.0, 1.0, 1.0)

    def __post_init__(self):
        self.direction = _as_tensor(self.direction)
        check_tensor(self.direction, "direction", floating=True)
        _check_direction(self.direction, "direction", self.direction)
        self.irradiance = _check_nonnegative(_as_tensor(self.irradiance, self.direction), "irradiance",
                                             self.direction)
        self.color = _check_colour(_as_tensor(self.color, self.direction), "color", self.direction)

    def samples(self, x: torch.Tensor) -> List[LightSample]:
        return [directional_light_unchecked(x, self.direction, self.irradiance[..., None] * self.color)]


@dataclass
class AreaLight(_TensorFields):
    """An emissive triangle mesh (world space) of uniform ``radiance [C]`` or per-face ``radiance [F, C]``.

    Lit points integrate it with ``samples_per_face`` stratified points per face
    (:func:`lumigrad.shading.area_light`); :func:`lumigrad.render` also draws it, emitting from its front faces.
    No shadows: the raster path has no visibility between points.
    """

    verts: torch.Tensor
    faces: torch.Tensor
    radiance: torch.Tensor = (1.0, 1.0, 1.0)
    samples_per_face: int = 4
    two_sided: bool = False

    def __post_init__(self):
        self.verts = check_tensor(_as_tensor(self.verts), "verts", trailing=(None, 3), max_dims=2, floating=True)
        if not isinstance(self.faces, torch.Tensor):
            self.faces = torch.as_tensor(self.faces, dtype=torch.long, device=self.verts.device)
        check_mesh(self.verts, self.faces, device=self.verts.device, what="an AreaLight")
        self.faces = self.faces.long()
        self.radiance = _as_tensor(self.radiance, self.verts)
        check_tensor(self.radiance, "radiance", trailing=(None,), max_dims=2, floating=True)
        check_channels(self.radiance, "radiance", "[C] or [F, C]")
        if self.radiance.dim() == 2 and self.radiance.shape[0] != self.faces.shape[0]:
            raise ValueError(f"radiance must have shape [C] or [F, C] with F = {self.faces.shape[0]} (faces); got "
                             f"{tuple(self.radiance.shape)}")
        _check_nonnegative(self.radiance, "radiance", self.verts)
        check_samples_per_face(self.samples_per_face)  # here, not first at render time

    def parameters(self) -> Dict[str, torch.Tensor]:
        return {"verts": self.verts, "radiance": self.radiance}

    def samples(self, x: torch.Tensor) -> List[LightSample]:
        return area_light_unchecked(x, self.verts, self.faces, self.radiance,
                                    samples_per_face=self.samples_per_face, two_sided=self.two_sided)

    is_delta: ClassVar[bool] = False

    def sample_direct(self, ref_points: torch.Tensor, u: torch.Tensor, *,
                      method: str = "solid_angle") -> DirectionSample:
        """A point of the lamp seen from ``ref_points [..., 3]``, from ``u [..., 2]``: by solid angle (default)
        or by area (:func:`lumigrad.shading.emitters.area_light_sample_direct`)."""
        return area_light_sample_direct(ref_points, self.verts, self.faces, self.radiance, u,
                                        two_sided=self.two_sided, method=method)

    def eval(self, ref_points: torch.Tensor, wi: torch.Tensor) -> torch.Tensor:
        """Radiance ``[..., C]`` arriving from direction ``wi`` (:func:`lumigrad.shading.emitters.area_light_eval`)."""
        return area_light_eval(ref_points, wi, self.verts, self.faces, self.radiance, two_sided=self.two_sided)

    def pdf(self, ref_points: torch.Tensor, wi: torch.Tensor, *, method: str = "solid_angle") -> torch.Tensor:
        """Density ``[..., 1]`` of :meth:`sample_direct` picking ``wi`` with the same ``method``
        (:func:`lumigrad.shading.emitters.area_light_pdf`)."""
        return area_light_pdf(ref_points, wi, self.verts, self.faces, two_sided=self.two_sided, method=method)


@dataclass
class EnvironmentLight(_TensorFields):
    """Distant lighting from an equirectangular map ``texels [H, W, C]`` (linear radiance, world +y up).

    Rendering uses ``scale * texels``: diffuse from its SH projection of degree ``sh_degree``, glossy by the
    split sum over maps pre-filtered at ``roughness_levels`` (``prefilter_size`` texels each), and the map
    itself behind the geometry when ``visible``. Both are recomputed from the texels at each render, so
    the texels and ``scale`` receive gradients. Keep optimised maps small (e.g. 16 x 32): pre-filtering is
    brute force, O(input texels x output texels). :func:`lumigrad.io.read_environment` reads one from a
    ``.hdr`` / ``.exr`` file.
    """

    texels: torch.Tensor
    scale: torch.Tensor = 1.0
    sh_degree: int = 2
    roughness_levels: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0)
    prefilter_size: Tuple[int, int] = (16, 32)
    visible: bool = True

    def __post_init__(self):
        self.texels = check_tensor(_as_tensor(self.texels), "texels", trailing=(None, None, None), max_dims=3,
                                   floating=True, finite=True)
        if self.texels.shape[0] == 0 or self.texels.shape[1] == 0:
            raise ValueError(f"texels must have at least one texel; got shape {tuple(self.texels.shape)}")
        check_texture_layout(self.texels, "texels")
        self.scale = _check_nonnegative(_as_tensor(self.scale, self.texels), "scale", self.texels)
        if isinstance(self.sh_degree, bool) or not isinstance(self.sh_degree, int) or not 0 <= self.sh_degree <= 3:
            raise ValueError(f"sh_degree must be an int in [0, 3]; got {self.sh_degree!r}")
        if isinstance(self.roughness_levels, (str, bytes)) or not hasattr(self.roughness_levels, "__iter__"):
            raise TypeError(f"roughness_levels must be a sequence of floats in [0, 1]; got "
                            f"{type(self.roughness_levels).__name__}")
        levels = [check_number(r, "roughness_levels", lo=0.0, hi=1.0) for r in self.roughness_levels]
        if not levels or levels != sorted(set(levels)):
            raise ValueError(f"roughness_levels must be a non-empty, strictly increasing list in [0, 1]; got {levels}")
        self.roughness_levels = tuple(levels)
        h, w = check_env_size(self.prefilter_size, "prefilter_size")
        self.prefilter_size = (h, w)
        # Pre-filtering is a dense [h w, input texels] product at each render: budget it now, not mid-fit.
        src = (2 * h, 2 * w) if self.texels.shape[0] > 2 * h else tuple(self.texels.shape[:2])
        check_pixel_samples(h * w * src[0] * src[1], f"EnvironmentLight: prefilter_size=({h}, {w}) output texels x "
                                                     f"{src[0]}x{src[1]} input texels")

    @property
    def radiance(self) -> torch.Tensor:
        return self.texels * self.scale

    def sh_coeffs(self) -> torch.Tensor:
        return sh_project_equirect(self.radiance, self.sh_degree)

    def prefiltered(self) -> torch.Tensor:
        return prefilter_ggx(self.radiance, list(self.roughness_levels), size=tuple(self.prefilter_size))

    is_delta: ClassVar[bool] = False

    def sample_direct(self, ref_points: torch.Tensor, u: torch.Tensor) -> DirectionSample:
        """A direction drawn by luminance from ``u [..., 2]`` (:func:`lumigrad.shading.emitters.envmap_sample_direct`
        of ``scale * texels``); ``distance = +inf``."""
        return envmap_sample_direct(self.radiance, ref_points, u)

    def eval(self, ref_points: torch.Tensor, wi: torch.Tensor) -> torch.Tensor:
        """Radiance ``[..., C]`` of the map in direction ``wi`` (bilinear, as the rendered background)."""
        batch = _emitter_batch(ref_points, wi, self.texels)
        return envmap_lookup(self.radiance, wi.expand(batch + (3,)))

    def pdf(self, ref_points: torch.Tensor, wi: torch.Tensor) -> torch.Tensor:
        """Density ``[..., 1]`` of :meth:`sample_direct` picking ``wi``
        (:func:`lumigrad.shading.emitters.envmap_pdf`)."""
        return envmap_pdf(self.radiance, ref_points, wi)


@dataclass
class SHLight(_TensorFields):
    """Distant diffuse lighting given directly as SH radiance coefficients ``coeffs [(degree + 1)^2, C]``."""

    coeffs: torch.Tensor = field(default=None)

    def __post_init__(self):
        if self.coeffs is None:
            raise TypeError("SHLight needs coeffs: SH radiance coefficients [(degree + 1)^2, C]")
        self.coeffs = check_tensor(_as_tensor(self.coeffs), "coeffs", trailing=(None, None), max_dims=2,
                                   floating=True, finite=True)
        count = self.coeffs.shape[0]
        if count not in (1, 4, 9, 16):
            raise ValueError(f"coeffs must have shape [K, C] with K in (1, 4, 9, 16) ((degree + 1)^2, degree <= 3); "
                             f"got {tuple(self.coeffs.shape)}")
        check_channels(self.coeffs, "coeffs", "[K, C]")


Light = Union[PointLight, SpotLight, DirectionalLight, AreaLight, EnvironmentLight, SHLight]
