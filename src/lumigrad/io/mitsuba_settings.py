"""What Mitsuba 3 would render a loaded scene file with, as lumigrad's render settings.

:func:`read_mitsuba_xml` keeps a file's ``<integrator>``, ``<sampler>`` and ``<film>`` in ``scene.metadata``;
:func:`mitsuba_render_settings` turns them into the arguments of :func:`lumigrad.render`, so that::

    scene = lg.io.load("scene.xml")
    out = lg.render(scene, **lg.io.mitsuba_render_settings(scene))

renders the file as Mitsuba's ``mi.render(mi.load_file("scene.xml"))`` would: its first sensor (or the one named),
its integrator (:data:`MITSUBA_INTEGRATORS`) with ``max_depth`` (Mitsuba's default where the file names none:
:data:`MITSUBA_DEFAULT_DEPTH`), ``rr_depth`` and ``hide_emitters``, the sensor's ``sample_count``
(:data:`MITSUBA_DEFAULT_SPP` without a ``<sampler>``), and its film's pixel filter. ``lumigrad render`` uses the same
rules for a Mitsuba file given without options.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from ..cameras.pixel_filter import PixelFilter, as_pixel_filter

__all__ = ["MITSUBA_DEFAULT_DEPTH", "MITSUBA_DEFAULT_SPP", "MITSUBA_INTEGRATORS", "file_count",
           "integrator_settings_of", "mitsuba_integrator", "mitsuba_render_settings", "mitsuba_sensors",
           "sensor_pixel_filter", "sensor_sample_count"]

#: Mitsuba 3 integrator plugins -> lumigrad integrators (lumigrad's ``path`` traces media and differentiates as
#: ``prb`` / ``prb_projective`` do); other plugins render with ``path`` (:func:`mitsuba_integrator` says so).
MITSUBA_INTEGRATORS = {"path": "path", "volpath": "path", "volpathmis": "path", "prb": "path", "prb_basic": "path",
                       "prbvolpath": "path", "prb_projective": "path", "direct": "direct",
                       "direct_projective": "direct"}
#: Mitsuba 3.9's ``max_depth`` where the file's integrator names none (-1: no limit).
MITSUBA_DEFAULT_DEPTH = {"path": -1, "volpath": -1, "volpathmis": -1, "prb": 6, "prb_basic": 6, "prbvolpath": 6,
                         "prb_projective": 6}
#: Mitsuba's default sampler's ``sample_count`` (a sensor without a ``<sampler>``).
MITSUBA_DEFAULT_SPP = 4


def mitsuba_sensors(scene) -> Dict[str, dict]:
    """A Mitsuba file's sensors' settings by camera name (``scene.metadata["sensors"]``, file order), or {} for a
    scene that did not come from a Mitsuba file."""
    meta = scene.metadata if isinstance(getattr(scene, "metadata", None), dict) else {}
    sensors = meta.get("sensors") if "version" in meta else None
    return {k: v for k, v in sensors.items() if k in scene.cameras} if isinstance(sensors, dict) else {}


def sensor_pixel_filter(sensor: dict) -> PixelFilter:
    """The pixel filter of a sensor's settings (its film's ``<rfilter>``, else Mitsuba's default gaussian)."""
    film = sensor.get("film") if isinstance(sensor.get("film"), dict) else {}
    return as_pixel_filter(film.get("rfilter", "gaussian"), "rfilter")


def sensor_sample_count(sensor: dict) -> int:
    """A sensor's samples per pixel: its ``<sampler>``'s ``sample_count`` (:data:`MITSUBA_DEFAULT_SPP` without a
    sampler or a count), or ValueError for a count that is not a positive integer."""
    sampler = sensor.get("sampler")
    count = sampler.get("sample_count", MITSUBA_DEFAULT_SPP) if isinstance(sampler, dict) else MITSUBA_DEFAULT_SPP
    return file_count(count, "sensor's sample_count", 1)


def mitsuba_integrator(scene) -> tuple:
    """``(lumigrad integrator name, the file's integrator settings dict, known)`` of a Mitsuba file's
    ``<integrator>``, or ``(None, None, True)`` when it has none (Mitsuba would refuse to render it)."""
    meta = scene.metadata if isinstance(getattr(scene, "metadata", None), dict) else {}
    integ = meta.get("integrator") if "version" in meta else None
    if not isinstance(integ, dict):
        return None, None, True
    kind = integ.get("type")
    return MITSUBA_INTEGRATORS.get(kind, "path"), integ, kind in MITSUBA_INTEGRATORS


def file_count(value, what: str, low: int) -> int:
    """An integer setting of the file (``what``), at least ``low``, or ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < low:
        raise ValueError(f"the file's {what} must be an integer >= {low}; got {value!r}")
    return int(value)


def integrator_settings_of(name: str, integ: dict, known_settings) -> Dict[str, Any]:
    """``max_depth`` (Mitsuba's default where ``integ`` names none), ``rr_depth`` and ``hide_emitters`` of the
    file's integrator settings ``integ``, those of them integrator ``name`` takes (``known_settings``)."""
    out: Dict[str, Any] = {}
    if "max_depth" in known_settings:
        depth = integ.get("max_depth", MITSUBA_DEFAULT_DEPTH.get(integ.get("type"), -1))
        if depth == 0:
            raise ValueError("the file's integrator has max_depth 0 (Mitsuba renders nothing)")
        out["max_depth"] = -1 if depth == -1 else file_count(depth, "integrator max_depth", 1)
    if "rr_depth" in integ and "rr_depth" in known_settings:
        out["rr_depth"] = file_count(integ["rr_depth"], "integrator rr_depth", 1)
    if "hide_emitters" in integ and "hide_emitters" in known_settings:
        out["hide_emitters"] = integ["hide_emitters"]
    return out


def mitsuba_render_settings(scene, sensor: Optional[str] = None) -> Dict[str, Any]:
    """Keyword arguments of :func:`lumigrad.render` that render a loaded Mitsuba file as Mitsuba would (see the
    module): ``camera`` (sensor ``sensor``, default the file's first), ``integrator``, ``spp`` and the
    integrator's ``max_depth`` / ``rr_depth`` / ``hide_emitters``. Sets ``scene.film.pixel_filter`` to that
    sensor's film filter (the loader gave the scene the first sensor's).

    Raises:
        ValueError: ``scene`` is not from a Mitsuba file, has no sensor or no ``<integrator>`` (Mitsuba refuses to
            render such a file), ``sensor`` names none of its sensors, or a setting lumigrad cannot take
            (``max_depth`` 0, a fractional ``sample_count``).
    """
    from ..integrators import integrator_settings

    sensors = mitsuba_sensors(scene)
    if not sensors:
        raise ValueError("scene has no Mitsuba sensor (it did not come from a Mitsuba file with a <sensor>)")
    name = next(iter(sensors)) if sensor is None else sensor
    if name not in sensors:
        raise ValueError(f"sensor {name!r} is not one of the file's: {', '.join(sensors)}")
    integrator, integ, _ = mitsuba_integrator(scene)
    if integrator is None:
        raise ValueError("the file has no <integrator> (Mitsuba would not render it); pass lumigrad.render's own")
    settings = {"camera": scene.cameras[name], "integrator": integrator, "spp": sensor_sample_count(sensors[name])}
    settings.update(integrator_settings_of(integrator, integ, integrator_settings(integrator)))
    scene.film.pixel_filter = sensor_pixel_filter(sensors[name])
    return settings
