"""Scene lights: thin containers that hold a light's tensors and call the functional lights in ``shading``.

Each direct light has ``samples(x) -> List[LightSample]`` for :func:`lumigrad.shading.shade_direct`;
environment lights give SH coefficients (diffuse) and pre-filtered maps (glossy) for
:func:`lumigrad.shading.shade_environment`. ``parameters()`` names every tensor, for :class:`Scene`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch

from .._checks import check_tensor
from ..shading.area_light import area_light
from ..shading.envmap import prefilter_ggx
from ..shading.lights import LightSample, directional_light, point_light, spot_light
from ..shading.sh import sh_project_equirect

__all__ = ["AreaLight", "DirectionalLight", "EnvironmentLight", "Light", "PointLight", "SHLight", "SpotLight"]


def _as_tensor(value, like: Optional[torch.Tensor] = None) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    dtype = like.dtype if like is not None else torch.get_default_dtype()
    return torch.tensor(value, dtype=dtype, device=like.device if like is not None else None)


class _TensorFields:
    """``parameters()`` for dataclasses: every tensor field by name."""

    def parameters(self) -> Dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), torch.Tensor)}


@dataclass
class PointLight(_TensorFields):
    """A point light (glTF ``KHR_lights_punctual`` "point"): ``intensity * color`` W/sr-like, inverse square."""

    position: torch.Tensor
    intensity: torch.Tensor = 1.0
    color: torch.Tensor = (1.0, 1.0, 1.0)
    range: Optional[float] = None  # noqa: A003 - glTF's name

    def __post_init__(self):
        self.position = check_tensor(_as_tensor(self.position), "position", trailing=(3,), floating=True)
        self.intensity = _as_tensor(self.intensity, self.position)
        self.color = _as_tensor(self.color, self.position)

    def samples(self, x: torch.Tensor) -> List[LightSample]:
        return [point_light(x, self.position, self.intensity[..., None] * self.color, range=self.range)]


@dataclass
class SpotLight(_TensorFields):
    """A glTF spot light: a point light inside a cone with a smooth edge between the two angles (radians)."""

    position: torch.Tensor
    direction: torch.Tensor
    intensity: torch.Tensor = 1.0
    color: torch.Tensor = (1.0, 1.0, 1.0)
    inner_angle: torch.Tensor = 0.0
    outer_angle: torch.Tensor = math.pi / 4
    range: Optional[float] = None  # noqa: A003

    def __post_init__(self):
        self.position = check_tensor(_as_tensor(self.position), "position", trailing=(3,), floating=True)
        for name in ("direction", "intensity", "color", "inner_angle", "outer_angle"):
            setattr(self, name, _as_tensor(getattr(self, name), self.position))

    def samples(self, x: torch.Tensor) -> List[LightSample]:
        return [spot_light(x, self.position, self.direction, self.intensity[..., None] * self.color,
                           self.inner_angle, self.outer_angle, range=self.range)]


@dataclass
class DirectionalLight(_TensorFields):
    """A distant light shining along ``direction`` with ``irradiance * color`` (W/m^2-like, lux in glTF)."""

    direction: torch.Tensor
    irradiance: torch.Tensor = 1.0
    color: torch.Tensor = (1.0, 1.0, 1.0)

    def __post_init__(self):
        self.direction = check_tensor(_as_tensor(self.direction), "direction", trailing=(3,), floating=True)
        self.irradiance = _as_tensor(self.irradiance, self.direction)
        self.color = _as_tensor(self.color, self.direction)

    def samples(self, x: torch.Tensor) -> List[LightSample]:
        return [directional_light(x, self.direction, self.irradiance[..., None] * self.color)]


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
        self.faces = torch.as_tensor(self.faces, dtype=torch.long, device=self.verts.device)
        self.radiance = _as_tensor(self.radiance, self.verts)

    def parameters(self) -> Dict[str, torch.Tensor]:
        return {"verts": self.verts, "radiance": self.radiance}

    def samples(self, x: torch.Tensor) -> List[LightSample]:
        return area_light(x, self.verts, self.faces, self.radiance, samples_per_face=self.samples_per_face,
                          two_sided=self.two_sided)


@dataclass
class EnvironmentLight(_TensorFields):
    """Distant lighting from an equirectangular map ``texels [H, W, C]`` (linear radiance, world +y up).

    Rendering uses ``scale * texels``: diffuse from its SH projection of degree ``sh_degree``, glossy by the
    split sum over maps pre-filtered at ``roughness_levels`` (``prefilter_size`` texels each), and the map
    itself behind the geometry when ``visible``. Both are recomputed from the texels at each render, so
    the texels and ``scale`` receive gradients. Keep optimised maps small (e.g. 16 x 32): pre-filtering is
    brute force, O(input texels x output texels).
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
        self.scale = _as_tensor(self.scale, self.texels)

    @classmethod
    def from_file(cls, path, *, size: Optional[Tuple[int, int]] = (32, 64), **kw) -> "EnvironmentLight":
        """Load an equirectangular ``.hdr`` (Radiance RGBE) or ``.exr`` (OpenEXR) map, area-averaged down to
        ``size = (H, W)`` (``None`` keeps it as stored); ``kw`` go to the constructor."""
        from ..io.exr import read_exr
        from ..io.hdr import read_hdr

        suffix = str(path).lower().rsplit(".", 1)[-1]
        if suffix not in ("hdr", "exr"):
            raise ValueError(f"path must name a .hdr or .exr environment map; got {path}")
        texels = (read_hdr if suffix == "hdr" else read_exr)(path)
        texels = texels[..., :3] if texels.shape[-1] >= 3 else texels[..., :1].expand(-1, -1, 3)  # Y: grey
        if size is not None and tuple(texels.shape[:2]) != tuple(size):
            texels = torch.nn.functional.interpolate(texels.permute(2, 0, 1)[None], size=tuple(size),
                                                     mode="area")[0].permute(1, 2, 0).contiguous()
        return cls(texels, **kw)

    @property
    def radiance(self) -> torch.Tensor:
        return self.texels * self.scale

    def sh_coeffs(self) -> torch.Tensor:
        return sh_project_equirect(self.radiance, self.sh_degree)

    def prefiltered(self) -> torch.Tensor:
        return prefilter_ggx(self.radiance, list(self.roughness_levels), size=tuple(self.prefilter_size))


@dataclass
class SHLight(_TensorFields):
    """Distant diffuse lighting given directly as SH radiance coefficients ``coeffs [(degree + 1)^2, C]``."""

    coeffs: torch.Tensor = field(default=None)

    def __post_init__(self):
        self.coeffs = check_tensor(_as_tensor(self.coeffs), "coeffs", trailing=(None, None), max_dims=2,
                                   floating=True)


Light = Union[PointLight, SpotLight, DirectionalLight, AreaLight, EnvironmentLight, SHLight]
