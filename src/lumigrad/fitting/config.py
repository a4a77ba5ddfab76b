"""The ``lumigrad fit`` configuration: a TOML or YAML file read into checked dataclasses.

Every key is checked: an unknown key, a wrong type or a value out of range raises :class:`ConfigError`
naming the file and the key (``fit.toml: optimize[1].lr must be a number > 0; got 'fast'``), before any
rendering starts. Paths in the file are relative to the file's folder. ``docs/fit.md`` describes every key;
the examples in ``examples/configs/`` use them.
"""

from __future__ import annotations

import difflib
import functools
import math
import reprlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

__all__ = ["ConfigError", "DataConfig", "FitConfig", "FitSettings", "LightConfig", "OptimizeConfig",
           "RenderConfig", "SceneConfig", "load_config", "parse_config"]

# Maps (``[[optimize]] map``), loss terms (``[loss]`` keys) and light types (``[[scene.lights]] type``) are
# registries: lumigrad.fitting.parameterize.MAPS, lumigrad.fitting.losses.LOSS_TERMS and
# lumigrad.scene.LIGHT_TYPES; validation lists what is registered when the config is read.
OPTIMIZERS = ("adam", "adam_uniform", "sgd")
SCHEDULES = ("constant", "cosine")


MAX_CONFIG_BYTES = 1 << 20  # a fit configuration is a page of text; a bigger file is not one
MAX_SEED = 2 ** 63 - 1  # torch.manual_seed takes a signed 64-bit seed
MAX_SPP = 1 << 16  # samples per pixel of one render
MAX_STEPS = 10 ** 9

_repr = reprlib.Repr()
_repr.maxlevel, _repr.maxlist, _repr.maxdict, _repr.maxstring, _repr.maxother = 3, 6, 6, 60, 60


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or has a bad key; the message names the file and key."""


def short_repr(value: Any) -> str:
    """``repr(value)`` bounded in depth, items and length (values quoted in errors come from untrusted files)."""
    text = _repr.repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


@dataclass
class LightConfig:
    """One ``[[scene.lights]]`` table: a registered light type and the values of its settings."""

    name: str
    type: str
    settings: Dict[str, Any] = field(default_factory=dict)


@dataclass
class SceneConfig:
    """The scene being fitted: a file, or a primitive to start shape recovery from."""

    file: Optional[Path] = None
    texture: Optional[Path] = None  # base colour image for a mesh file (OBJ / PLY) with uv
    primitive: Optional[str] = None  # "icosphere"
    subdivisions: int = 3
    radius: float = 1.0
    center: List[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    environment: Optional[Path] = None
    environment_size: Tuple[int, int] = (16, 32)
    tone: Optional[str] = None
    encode: Optional[str] = None
    pixel_filter: Optional[str] = None  # the path tracer's (lumigrad.cameras.pixel_filter); None: the scene film's
    default_lights: bool = True
    lights: List[LightConfig] = field(default_factory=list)


@dataclass
class DataConfig:
    """Target images: real photos with cameras (``dataset``), or renders of a true scene (synthetic)."""

    dataset: Optional[Path] = None
    image_dir: Optional[Path] = None
    depth_dir: Optional[Path] = None  # depth maps beside photos, for the depth term
    depth_scale: float = 1.0
    scale: float = 1.0
    view_indices: Optional[List[int]] = None
    truth: Optional[Path] = None  # synthetic: the scene file rendered into targets (default: scene.file)
    set: Dict[str, Any] = field(default_factory=dict)  # synthetic: true values of scene parameters
    views: int = 8
    size: Tuple[int, int] = (64, 64)
    elevation: float = 20.0
    fov: float = 40.0
    distance: float = 1.2  # camera distance in bounding-sphere radii over sin(fov / 2)
    times: Optional[List[float]] = None  # synthetic: animation times (s) of the targets (targets = views x times)
    frames: int = 0  # synthetic: that many times evenly over the animation (0: no time axis unless times)
    animation: Optional[str] = None  # the animation played over time (default: the scene's first)
    stream: bool = False  # photos: decode each step's views when drawn instead of all up front
    cache_mb: float = 1024.0  # with stream: the most MB of decoded photos kept between steps

    @property
    def synthetic(self) -> bool:
        return self.dataset is None

    @property
    def over_time(self) -> bool:
        """Whether the targets span animation times (``times`` or ``frames``)."""
        return self.times is not None or self.frames > 0

    @property
    def time_count(self) -> int:
        return len(self.times) if self.times is not None else max(self.frames, 1)


@dataclass
class OptimizeConfig:
    """One parameter group: which scene parameters, how they are parameterised and stepped."""

    name: str
    params: List[str]
    lr: float
    map: str = "identity"
    optimizer: str = "adam"
    schedule: str = "constant"
    start: int = 0
    init: Any = None
    lambda_: float = 19.0
    shared: bool = False


@dataclass
class FitSettings:
    steps: int = 200
    seed: int = 0
    checkpoint_every: int = 25
    clip_spikes: Optional[float] = 10.0
    views_per_step: int = 0
    coarse_to_fine: List[Tuple[float, float]] = field(default_factory=lambda: [(0.0, 1.0)])
    background: Union[str, float, List[float]] = 0.0
    record_every: int = 0  # 0: about 50 records over the fit
    sync_check_every: int = 0  # distributed fits: check the ranks' parameters are bit-identical every N steps


@dataclass
class RenderConfig:
    """``[render]``: the integrator that renders the scene (and synthetic targets) and its settings."""

    integrator: str = "raster"
    settings: Dict[str, Any] = field(default_factory=dict)  # only the keys the file sets
    spp: int = 1  # samples per pixel of each step's render (Monte Carlo integrators)
    target_spp: int = 1  # samples per pixel of synthetic targets (default: spp)
    tile: int = 0  # > 0: render and differentiate each step's images in tiles of this many pixels a side


#: Integrator settings that other tables decide: ``[fit] background``.
RENDER_SETTINGS_ELSEWHERE = {"background": "fit.background"}


@dataclass
class FitConfig:
    path: Path
    text: str
    name: str
    scene: SceneConfig
    data: DataConfig
    optimize: List[OptimizeConfig]
    loss: Dict[str, float]
    mask: str
    fit: FitSettings
    output: Optional[Path]
    raw: Any = None  # the parsed file, for the run folder's identity check
    trust_paths: bool = False  # let files named inside input files leave their folders (run_fit's opt-in)
    render: RenderConfig = field(default_factory=RenderConfig)
    tensorboard: bool = False  # [output] tensorboard: write the fit live to OUT/tensorboard/


def load_config(path: Union[str, Path], overrides: Sequence[str] = ()) -> FitConfig:
    """Read and check a ``.toml``, ``.yaml`` or ``.yml`` fit configuration.

    ``overrides``: ``"KEY=VALUE"`` strings (``lumigrad fit --set``; :mod:`lumigrad.fitting.overrides`) applied
    before the check; the config's ``text`` is then the overridden config, so a copy of it re-runs the same fit.

    Raises:
        ConfigError: missing or unparsable file, unknown keys, wrong types or values (naming the key).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {size:,} bytes is too large for a fit config (at most {MAX_CONFIG_BYTES:,})")
    text = path.read_text(encoding="utf-8", errors="replace")
    suffix = path.suffix.lower()
    if suffix == ".toml":
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - older Pythons
            import tomli as tomllib
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    elif suffix in (".yaml", ".yml"):
        import yaml

        try:
            raw = yaml.load(text, Loader=_no_alias_loader())
        except _AliasError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0][:200]})") from None
        except RecursionError:
            raise ConfigError(f"{path}: YAML nested too deeply") from None
    else:
        raise ConfigError(f"{path}: a fit config is a .toml, .yaml or .yml file")
    if not overrides:
        return parse_config(raw, path, text)
    from .overrides import apply_overrides, blame, config_text

    raw = apply_overrides(raw, overrides)
    try:
        return parse_config(raw, path, config_text(raw, path, overrides))
    except ConfigError as exc:
        raise blame(exc, overrides) from None


class _AliasError(Exception):
    pass


@functools.lru_cache(maxsize=1)
def _no_alias_loader():
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        """``yaml.SafeLoader`` that refuses anchors and aliases: a 1 KB alias bomb expands to gigabytes."""

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise _AliasError(f"line {event.start_mark.line + 1}: YAML aliases (*name) are not allowed in a fit "
                                  "config; write the value out")
            event = self.peek_event()
            if getattr(event, "anchor", None) is not None:
                raise _AliasError(f"line {event.start_mark.line + 1}: YAML anchors (&name) are not allowed in a fit "
                                  "config; write the value out")
            return super().compose_node(parent, index)

    return NoAliasLoader


#: Names users bring from other tools (PyTorch, nerfstudio, PyTorch3D scripts) -> lumigrad's key.
SYNONYMS = {"learning_rate": "lr", "learningrate": "lr", "step_size": "lr", "iterations": "steps",
            "num_steps": "steps", "max_steps": "steps", "n_steps": "steps", "max_num_iterations": "steps",
            "num_views": "views", "n_views": "views", "image_size": "size", "resolution": "size",
            "parameters": "params", "param": "params", "optimiser": "optimizer", "scheduler": "schedule",
            "lr_schedule": "schedule", "checkpoint_interval": "checkpoint_every", "save_every": "checkpoint_every",
            "steps_per_save": "checkpoint_every", "output_dir": "dir", "out_dir": "dir", "seed_value": "seed"}


class ConfigTable:
    """A dict being read key by key; ``done()`` rejects the keys nobody asked for."""

    def __init__(self, raw: Any, where: str, file: Path):
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{file.name}: {where or 'the file'} must be a table; got {_kind(raw)}")
        self.raw, self.where, self.file, self.used = raw, where, file, set()

    def key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def error(self, name: str, what: str, value: Any) -> ConfigError:
        return ConfigError(f"{self.file.name}: {self.key(name)} must be {what}; got {short_repr(value)}")

    def get(self, name: str, default: Any = None) -> Any:
        self.used.add(name)
        return self.raw.get(name, default)

    def number(self, name: str, default: Optional[float], low: float = -math.inf, high: float = math.inf,
               strict_low: bool = False) -> Optional[float]:
        v = self.get(name, default)
        if v is None:
            return None
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        ok = ok and (v > low if strict_low else v >= low) and v <= high
        if not ok:
            bound = f"> {low}" if strict_low else (f">= {low}" if low > -math.inf else "")
            bound += f" and <= {high}" if high < math.inf else ""
            raise self.error(name, f"a finite number {bound}".rstrip(), v)
        return float(v)

    def integer(self, name: str, default: int, low: int = 0, high: Optional[int] = None) -> int:
        v = self.get(name, default)
        if isinstance(v, bool) or not isinstance(v, int) or v < low or (high is not None and v > high):
            raise self.error(name, f"an integer >= {low}" + (f" and <= {high}" if high is not None else ""), v)
        return v

    def boolean(self, name: str, default: bool) -> bool:
        v = self.get(name, default)
        if not isinstance(v, bool):
            raise self.error(name, "true or false", v)
        return v

    def string(self, name: str, default: Optional[str], choices: Optional[Sequence[str]] = None) -> Optional[str]:
        v = self.get(name, default)
        if v is None:
            return None
        if not isinstance(v, str) or (choices is not None and v not in choices):
            raise self.error(name, "one of " + ", ".join(repr(c) for c in choices) if choices else "a string", v)
        return v

    def path(self, name: str) -> Optional[Path]:
        v = self.string(name, None)
        if v is None:
            return None
        p = Path(v).expanduser()
        return p if p.is_absolute() else (self.file.parent / p)

    def numbers(self, name: str, default: Any, length: Optional[int] = None) -> Optional[List[float]]:
        v = self.get(name, default)
        if v is None:
            return None
        if not (isinstance(v, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                            and math.isfinite(x) for x in v)) or (length and len(v) != length):
            raise self.error(name, f"a list of {length or 'some'} finite numbers", v)
        return [float(x) for x in v]

    def table(self, name: str) -> "ConfigTable":
        return ConfigTable(self.get(name, {}), self.key(name), self.file)

    def done(self) -> None:
        unknown = [k for k in self.raw if k not in self.used]
        if unknown:
            k = unknown[0]
            close = _suggest(str(k), sorted(self.used))
            hint = f" (did you mean {close!r}?)" if close else f"; known keys: {', '.join(sorted(self.used))}"
            raise ConfigError(f"{self.file.name}: unknown key {short_repr(self.key(str(k)))}{hint}")

    def missing(self, name: str) -> ConfigError:
        """The error for a required key that is absent, naming a key of the table that was probably meant for it
        (``learning_rate`` for ``lr``)."""
        meant = [k for k in self.raw if k not in self.used and _suggest(str(k), [name]) == name]
        hint = f" (the table has {short_repr(str(meant[0]))}: did you mean {name!r}?)" if meant else ""
        return ConfigError(f"{self.file.name}: {self.key(name)} is required{hint}")


def _suggest(key: str, known: Sequence[str]) -> Optional[str]:
    """The known key ``key`` was probably meant to be: a synonym from another tool, or a close spelling."""
    synonym = SYNONYMS.get(key.lower().replace("-", "_"))
    if synonym in known:
        return synonym
    close = difflib.get_close_matches(key, list(known), n=1)
    return close[0] if close else None


def parse_config(raw: Any, path: Path, text: str = "") -> FitConfig:
    """Check a parsed configuration (a dict) and return a :class:`FitConfig`; see :func:`load_config`.

    A configuration with ``[render] integrator = "volume"`` is a radiance-field fit: it is checked by
    :func:`lumigrad.fitting.volume_config.parse_volume_config` and returned as its ``VolumeFitConfig``."""
    path = Path(path)
    from .volume_config import is_volume_config, parse_volume_config

    if is_volume_config(raw):
        return parse_volume_config(raw, path, text)
    top = ConfigTable(raw, "", path)
    name = top.string("name", path.stem)
    scene = _scene(top.table("scene"))
    data = _data(top.table("data"), scene)
    optimize = _optimize(top.get("optimize"), path)
    from .losses import LOSS_TERMS

    loss_t = top.table("loss")
    loss = {k: loss_t.number(k, 0.0, 0.0) for k in LOSS_TERMS.names()}
    mask = loss_t.string("mask", "none", ("none", "alpha"))
    loss_t.done()
    loss = {k: v for k, v in loss.items() if v > 0}
    if not any(LOSS_TERMS[k].data for k in loss):
        data_terms = [k for k, term in LOSS_TERMS.items() if term.data]
        raise ConfigError(f"{path.name}: [loss] needs at least one image term with a weight > 0 "
                          f"({', '.join(data_terms)})")
    fit = _fit(top.table("fit"))
    render = _render(top.table("render"))
    out_t = top.table("output")
    output = out_t.path("dir")
    tensorboard = out_t.boolean("tensorboard", False)
    out_t.done()
    top.done()
    if tensorboard:
        from ..optim.tensorboard import EXTRA_HINT, tensorboard_available

        if not tensorboard_available():
            raise ConfigError(f"{path.name}: output.tensorboard = true needs the tensorboard package: {EXTRA_HINT}")
    from ..limits import BudgetError, check_pixel_samples

    if data.synthetic:
        try:
            check_pixel_samples(data.views * data.time_count * data.size[0] * data.size[1],
                                f"{path.name}: data.views x data.size is {data.views} views of "
                                f"{data.size[0]}x{data.size[1]} pixels" + (f" at {data.time_count} times" if
                                                                            data.over_time else ""))
        except BudgetError as exc:
            raise ConfigError(str(exc)) from None
    return FitConfig(path, text, name, scene, data, optimize, loss, mask, fit, output, raw, render=render,
                     tensorboard=tensorboard)


def _scene(t: ConfigTable) -> SceneConfig:
    s = SceneConfig(file=t.path("file"), primitive=t.string("primitive", None, ("icosphere",)))
    if (s.file is None) == (s.primitive is None):
        raise ConfigError(f"{t.file.name}: [scene] needs exactly one of 'file' (a glTF, OBJ or PLY scene) and "
                          "'primitive' ('icosphere')")
    s.texture = t.path("texture")
    s.subdivisions = t.integer("subdivisions", 3)
    if s.subdivisions > 6:
        raise t.error("subdivisions", "at most 6 (40962 vertices)", s.subdivisions)
    s.radius = t.number("radius", 1.0, 0.0, strict_low=True)
    s.center = t.numbers("center", [0.0, 0.0, 0.0], 3)
    s.environment = t.path("environment")
    size = t.get("environment_size", [16, 32])
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in size)):
        raise t.error("environment_size", "[height, width] in texels", size)
    from ..limits import BudgetError, check_pixel_samples

    try:
        check_pixel_samples(size[0] * size[1], f"{t.file.name}: scene.environment_size is {size[0]}x{size[1]} texels")
    except BudgetError as exc:
        raise ConfigError(str(exc)) from None
    s.environment_size = (size[0], size[1])
    s.tone = t.string("tone", None, ("reinhard", "aces"))
    s.encode = t.string("encode", None, ("srgb", "gamma"))
    s.pixel_filter = t.string("pixel_filter", None, ("box", "tent", "gaussian", "mitchell", "catmullrom", "lanczos"))
    s.default_lights = t.boolean("default_lights", True)
    lights = t.get("lights", [])
    if not isinstance(lights, list):
        raise t.error("lights", "a list of tables ([[scene.lights]])", lights)
    if lights:
        from ..scene.light_types import LIGHT_TYPES

        types = [name for name, entry in LIGHT_TYPES.items() if entry.configurable]
    for k, raw in enumerate(lights):
        lt = ConfigTable(raw, f"scene.lights[{k}]", t.file)
        light = LightConfig(name=lt.string("name", f"light{k}"), type=lt.string("type", "point", types))
        for key, setting in LIGHT_TYPES[light.type].settings.items():
            default = None if setting.required else setting.default
            if setting.length is None:
                value = lt.number(key, default, setting.low)
            else:
                value = lt.numbers(key, default, setting.length)
            if value is None:
                raise ConfigError(f"{t.file.name}: scene.lights[{k}] of type {light.type!r} needs {key!r}")
            light.settings[key] = value
        lt.done()
        s.lights.append(light)
    for f in (s.file, s.texture, s.environment):
        if f is not None and not f.exists():
            raise ConfigError(f"{t.file.name}: [scene] names {f}, which does not exist")
    t.done()
    return s


def _data(t: ConfigTable, scene: SceneConfig) -> DataConfig:
    d = DataConfig(dataset=t.path("dataset"), image_dir=t.path("image_dir"), depth_dir=t.path("depth_dir"))
    d.depth_scale = t.number("depth_scale", 1.0, 0.0, strict_low=True)
    d.scale = t.number("scale", 1.0, 0.0, 16.0, strict_low=True)
    views = t.get("view_indices")
    if views is not None and not (isinstance(views, list) and views and all(isinstance(v, int) for v in views)):
        raise t.error("view_indices", "a non-empty list of view indices", views)
    d.view_indices = views
    d.truth = t.path("truth")
    set_ = t.get("set", {})
    if not isinstance(set_, dict):
        raise t.error("set", "a table of parameter name = value", set_)
    d.set = set_
    d.views = t.integer("views", 8, 1, 100_000)
    size = t.get("size", 64)
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        size = [size, size]
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(x, int) and 0 < x <= 4096 for x in size)):
        raise t.error("size", "a positive pixel count or [width, height] (at most 4096)", size)
    d.size = (size[0], size[1])
    d.elevation = t.number("elevation", 20.0, -89.0, 89.0)
    d.fov = t.number("fov", 40.0, 1.0, 170.0)
    d.distance = t.number("distance", 1.2, 1.0)
    _time_keys(t, d)
    d.stream = t.boolean("stream", False)
    d.cache_mb = t.number("cache_mb", 1024.0, 0.0)
    if d.dataset is not None:
        if not d.dataset.exists():
            raise ConfigError(f"{t.file.name}: data.dataset names {d.dataset}, which does not exist")
        synthetic_keys = [k for k in ("truth", "set", "views", "size", "elevation", "fov", "distance", "times",
                                      "frames", "animation") if k in t.raw]
        if synthetic_keys:
            raise ConfigError(f"{t.file.name}: data.{synthetic_keys[0]} describes synthetic targets and cannot be "
                              "combined with data.dataset (real photos)")
        if d.stream and d.depth_dir is not None:
            raise ConfigError(f"{t.file.name}: data.depth_dir reads every depth map up front; drop data.stream, or "
                              "the depth term")
    else:
        if d.truth is None and scene.file is None:
            raise ConfigError(f"{t.file.name}: synthetic targets need data.truth (a scene file) when [scene] is a "
                              "primitive")
        if d.depth_dir is not None:
            raise ConfigError(f"{t.file.name}: data.depth_dir goes with data.dataset (photos); synthetic targets "
                              "render their depth")
        if d.stream:
            raise ConfigError(f"{t.file.name}: data.stream decodes photos (data.dataset) as they are drawn; synthetic "
                              "targets are rendered, not read")
        if d.truth is not None and not d.truth.exists():
            raise ConfigError(f"{t.file.name}: data.truth names {d.truth}, which does not exist")
    t.done()
    return d


MAX_TIMES = 10_000  # targets over time: at most this many animation times


def _time_keys(t: ConfigTable, d: DataConfig) -> None:
    """``data.times`` (increasing seconds >= 0) or ``data.frames`` (a count), and ``data.animation`` (a name,
    checked against the scene when the problem is built)."""
    d.times = t.numbers("times", None)
    if d.times is not None:
        bad = not d.times or len(d.times) > MAX_TIMES or d.times[0] < 0
        bad = bad or any(b <= a for a, b in zip(d.times, d.times[1:]))
        if bad:
            raise t.error("times", f"a non-empty list of at most {MAX_TIMES} strictly increasing times in seconds "
                          ">= 0", t.raw["times"])
    d.frames = t.integer("frames", 0, 1, MAX_TIMES) if "frames" in t.raw else 0
    if d.times is not None and d.frames:
        raise ConfigError(f"{t.file.name}: data.times and data.frames both say when the targets are; give one")
    d.animation = t.string("animation", None)
    if d.animation is not None and not d.over_time:
        raise ConfigError(f"{t.file.name}: data.animation = {short_repr(d.animation)} needs data.times or "
                          "data.frames (the animation times of the targets)")


def _optimize(raw: Any, path: Path) -> List[OptimizeConfig]:
    from .parameterize import MAPS

    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{path.name}: the config needs at least one [[optimize]] table naming the parameters "
                          "to recover")
    out, names = [], set()
    for k, item in enumerate(raw):
        t = ConfigTable(item, f"optimize[{k}]", path)
        params = t.get("params")
        if isinstance(params, str):
            params = [params]
        if not (isinstance(params, list) and params and all(isinstance(p, str) and p for p in params)):
            raise t.error("params", "a parameter name or glob, or a list of them", params)
        lr = t.number("lr", None, 0.0, strict_low=True)
        if lr is None:
            raise t.missing("lr")
        o = OptimizeConfig(name=t.string("name", f"group{k}"), params=params, lr=lr)
        o.map = t.string("map", "identity", MAPS.names())
        o.optimizer = t.string("optimizer", MAPS[o.map].optimizer, OPTIMIZERS)
        o.schedule = t.string("schedule", "constant", SCHEDULES)
        o.start = t.integer("start", 0)
        o.init = t.get("init")
        o.lambda_ = t.number("lambda", 19.0, 0.0, strict_low=True)
        o.shared = t.boolean("shared", False)
        if o.name in names:
            raise ConfigError(f"{path.name}: two [[optimize]] groups are named {o.name!r}")
        names.add(o.name)
        t.done()
        out.append(o)
    return out


def _fit(t: ConfigTable) -> FitSettings:
    f = FitSettings(steps=t.integer("steps", 200, 1, MAX_STEPS), seed=t.integer("seed", 0, 0, MAX_SEED),
                    checkpoint_every=t.integer("checkpoint_every", 25, 1))
    f.clip_spikes = t.number("clip_spikes", 10.0, 1.0)
    f.views_per_step = t.integer("views_per_step", 0)
    c2f = t.get("coarse_to_fine", [[0.0, 1.0]])
    ok = isinstance(c2f, list) and c2f and all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in p)
        and 0 <= p[0] < 1 and 0 < p[1] <= 1 for p in c2f)
    if not ok or [p[0] for p in c2f] != sorted(p[0] for p in c2f) or c2f[0][0] != 0:
        raise t.error("coarse_to_fine", "a list of [fraction of steps, resolution scale] pairs starting at 0, "
                      "fractions increasing in [0, 1), scales in (0, 1]", c2f)
    f.coarse_to_fine = [(float(a), float(b)) for a, b in c2f]
    bg = t.get("background", 0.0)
    if not (bg == "environment" or is_colour_value(bg)
            or (isinstance(bg, list) and len(bg) == 3 and all(is_colour_value(x) for x in bg))):
        raise t.error("background", "'environment', a finite number >= 0 or an [r, g, b] list of them", bg)
    f.background = bg
    f.record_every = t.integer("record_every", 0)
    f.sync_check_every = t.integer("sync_check_every", 0)
    t.done()
    return f


def _render(t: ConfigTable) -> RenderConfig:
    """``[render]``: ``integrator`` (a registered name) and that integrator's settings, each value checked by
    building the integrator with it alone, so that an error names its key."""
    from ..integrators import get_integrator, integrator_names, integrator_settings
    from ..integrators.base import integrator_class as get_integrator_class

    name = t.string("integrator", "raster", integrator_names())
    spp = t.integer("spp", 1, 1, MAX_SPP)
    target_spp = t.integer("target_spp", spp, 1, MAX_SPP)
    tile = t.integer("tile", 0, 0, 1 << 16)
    if not get_integrator_class(name).monte_carlo and (spp, target_spp) != (1, 1):
        raise ConfigError(f"{t.file.name}: [render] integrator {name!r} renders one sample per pixel centre: "
                          "spp and target_spp must be 1 (they are for Monte Carlo integrators such as \"path\")")
    settings = {}
    for key in integrator_settings(name):
        if key in RENDER_SETTINGS_ELSEWHERE:
            if key in t.raw:
                raise ConfigError(f"{t.file.name}: {t.key(key)} is set by {RENDER_SETTINGS_ELSEWHERE[key]}; remove it "
                                  "from [render]")
        elif key in t.raw:
            settings[key] = t.get(key)
        else:
            t.get(key)  # known: done() lists it when another key is mistyped
    t.done()
    for key, value in settings.items():
        try:
            get_integrator(name, **{key: value})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{t.file.name}: {t.key(key)} = {short_repr(value)}: {exc}") from None
    try:
        get_integrator(name, **settings)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{t.file.name}: [render]: {exc}") from None
    return RenderConfig(name, settings, spp, target_spp, tile)


def is_colour_value(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x >= 0


def _kind(v: Any) -> str:
    return type(v).__name__
