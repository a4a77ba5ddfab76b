"""Light types: each light class registered once, with the kinds of its parameters and its config keys.

``LIGHT_TYPES`` is the registry. An entry says which class a light type is, what each of its parameters is
(:class:`~lumigrad.scene.ParamInfo` kinds, so ``scene.param_info("lights.key.intensity").kind`` is
``"light_intensity"``), and, when the light can be written in a fit configuration's ``[[scene.lights]]``
table, the keys that table takes and how the light is built from them. :meth:`lumigrad.Scene.add_light`
accepts the registered classes, and ``lumigrad fit`` validates ``type = ...`` against the registry.

Adding a light type is one file: define the class (a dataclass with tensor fields, a ``parameters()`` and,
for direct lights, ``samples(x) -> List[LightSample]``, which :func:`lumigrad.render` calls) and register it::

    register_light_type("ring", RingLight, param_kinds={"position": "light_position", "power": "light_intensity"},
                        settings={"position": Setting(length=3), "power": Setting(default=1.0, low=0.0)},
                        from_settings=lambda s: RingLight(torch.tensor(s["position"]), torch.tensor(s["power"])))

glTF's ``KHR_lights_punctual`` defines exactly point, spot and directional lights, so the glTF reader and
writer keep their own mapping of those three.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional

import torch

from ..registry import Registry
from . import params as P
from .lights import AreaLight, DirectionalLight, EnvironmentLight, PointLight, SHLight, SpotLight

__all__ = ["LIGHT_TYPES", "LightType", "REQUIRED", "Setting", "light_type_of", "register_light_type"]

#: The default of a :class:`Setting` that must be given.
REQUIRED = object()


@dataclass(frozen=True)
class Setting:
    """One key of a light's ``[[scene.lights]]`` table.

    Attributes:
        length: ``None`` for a number, ``n`` for a list of ``n`` numbers.
        default: the value when the key is absent; :data:`REQUIRED` when it must be given.
        low: the smallest value a number may take (``-inf``: any finite number).
    """

    length: Optional[int] = None
    default: Any = REQUIRED
    low: float = -math.inf

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class LightType:
    """A registered light type (see :func:`register_light_type`)."""

    name: str
    cls: type
    param_kinds: Mapping[str, str] = field(default_factory=dict)
    settings: Optional[Mapping[str, Setting]] = None
    from_settings: Optional[Callable[[Dict[str, Any]], Any]] = None

    @property
    def configurable(self) -> bool:
        """Whether a fit configuration can declare it in ``[[scene.lights]]``."""
        return self.from_settings is not None


#: Every light type, by name (the ``type`` of a ``[[scene.lights]]`` table, and ``ParamInfo.owner_kind``).
LIGHT_TYPES: Registry[LightType] = Registry("light type")


def register_light_type(name: str, cls: type, *, param_kinds: Optional[Mapping[str, str]] = None,
                        settings: Optional[Mapping[str, Setting]] = None,
                        from_settings: Optional[Callable[[Dict[str, Any]], Any]] = None,
                        replace: bool = False) -> LightType:
    """Register the light class ``cls`` as ``name``.

    Args:
        name: the type's name: ``type = "name"`` in ``[[scene.lights]]`` and ``ParamInfo.owner_kind``.
        cls: the light class; :meth:`lumigrad.Scene.add_light` accepts its instances.
        param_kinds: ``{parameter name: kind}`` for the names ``light.parameters()`` returns (kinds from
            :data:`lumigrad.scene.params.PARAM_KINDS`; a name left out is ``"other"``).
        settings: the keys of its ``[[scene.lights]]`` table (besides ``name`` and ``type``), each a
            :class:`Setting`; with ``from_settings``, which builds the light from ``{key: value}`` (numbers
            as floats, lists as lists of floats; absent optional keys at their defaults).
        replace: replace an existing registration of ``name``.

    Raises:
        ValueError: a taken name, a kind that is not a parameter kind, or ``settings`` without
            ``from_settings`` (or the reverse).
        TypeError: ``cls`` is not a class.
    """
    if not isinstance(cls, type):
        raise TypeError(f"cls must be a light class; got {type(cls).__name__}")
    kinds = dict(param_kinds or {})
    bad = [k for k in kinds.values() if k not in P.PARAM_KINDS]
    if bad:
        raise ValueError(f"light type {name!r}: {bad[0]!r} is not a parameter kind; use one of "
                         f"{', '.join(P.PARAM_KINDS)}")
    if (settings is None) != (from_settings is None):
        raise ValueError(f"light type {name!r}: settings and from_settings go together (the config keys and how "
                         "the light is built from them)")
    taken = [e.name for _, e in LIGHT_TYPES.items() if e.cls is cls and e.name != name]
    if taken:
        raise ValueError(f"{cls.__name__} is already registered as light type {taken[0]!r}")
    entry = LightType(name, cls, kinds, dict(settings) if settings is not None else None, from_settings)
    return LIGHT_TYPES.register(name, entry, replace=replace)


def light_type_of(light: Any) -> Optional[LightType]:
    """The registered type of ``light`` (by exact class, else the first registered base class), or ``None``."""
    entries = [e for _, e in LIGHT_TYPES.items()]
    for e in entries:
        if type(light) is e.cls:
            return e
    for e in entries:
        if isinstance(light, e.cls):
            return e
    return None


# ---------------------------------------------------------------------------------------------- built-ins
def _t(value) -> torch.Tensor:
    return torch.tensor(value)


_COLOR = Setting(length=3, default=[1.0, 1.0, 1.0])
_INTENSITY = Setting(default=1.0, low=0.0)

register_light_type(
    "point", PointLight,
    param_kinds={"position": P.LIGHT_POSITION, "intensity": P.LIGHT_INTENSITY, "color": P.LIGHT_COLOR},
    settings={"position": Setting(length=3), "intensity": _INTENSITY, "color": _COLOR},
    from_settings=lambda s: PointLight(_t(s["position"]), _t(s["intensity"]), _t(s["color"])))
register_light_type(
    "spot", SpotLight,
    param_kinds={"position": P.LIGHT_POSITION, "direction": P.LIGHT_DIRECTION, "intensity": P.LIGHT_INTENSITY,
                 "color": P.LIGHT_COLOR, "inner_angle": P.LIGHT_ANGLE, "outer_angle": P.LIGHT_ANGLE},
    settings={"position": Setting(length=3), "direction": Setting(length=3), "intensity": _INTENSITY,
              "color": _COLOR},
    from_settings=lambda s: SpotLight(_t(s["position"]), _t(s["direction"]), _t(s["intensity"]), _t(s["color"])))
register_light_type(
    "directional", DirectionalLight,
    param_kinds={"direction": P.LIGHT_DIRECTION, "irradiance": P.LIGHT_INTENSITY, "color": P.LIGHT_COLOR},
    settings={"direction": Setting(length=3), "intensity": _INTENSITY, "color": _COLOR},
    from_settings=lambda s: DirectionalLight(_t(s["direction"]), _t(s["intensity"]), _t(s["color"])))
register_light_type("area", AreaLight, param_kinds={"verts": P.VERTICES, "radiance": P.LIGHT_RADIANCE})
register_light_type("environment", EnvironmentLight,
                    param_kinds={"texels": P.ENVIRONMENT_TEXELS, "scale": P.LIGHT_INTENSITY})
register_light_type("sh", SHLight, param_kinds={"coeffs": P.SH_COEFFS})
