"""The configuration of a radiance-field fit: ``[render] integrator = "volume"``.

Such a configuration trains a :class:`~lumigrad.volume.fields.NerfField` on posed photos; it has no
``[scene]`` (the field is created to fit the data's bounds) and no ``[[optimize]]`` (every parameter of the
field is fitted). Keys (all checked, as for every fit configuration; ``docs/fit.md``, "Radiance fields")::

    name = "..."
    [data]      dataset (transforms.json / COLMAP folder), image_dir, scale, holdout_every (8), aabb
    [render]    integrator = "volume", steps_per_diagonal, step_size, early_stop_eps
    [field]     encoding, num_levels, features_per_level, log2_table_size, base_resolution, max_resolution,
                grid_resolution, grid_channels, hidden_dim, geo_feat_dim, color_hidden_dim, color_hidden_layers,
                sh_degree, precision, density_kind, density_bias, sparse
    [occupancy] use, resolution, threshold, update_every, warmup_steps
    [loss]      mse, huber, distortion, opacity_entropy
    [fit]       steps, seed, rays_per_step, lr, lr_final, checkpoint_every, eval_every, eval_views,
                background ("random" or a colour), max_minutes
    [output]    dir
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from .config import MAX_SEED, MAX_STEPS, ConfigError, is_colour_value, ConfigTable

__all__ = ["VolumeDataConfig", "VolumeFitConfig", "VolumeFitSettings", "is_volume_config", "parse_volume_config"]

#: ``[loss]`` terms of a volume fit: the image terms and the regularisers.
VOLUME_IMAGE_TERMS = ("mse", "huber")
VOLUME_REGULARIZERS = ("distortion", "opacity_entropy")


@dataclass
class VolumeDataConfig:
    dataset: Path
    image_dir: Optional[Path] = None
    scale: float = 1.0
    holdout_every: int = 8  # views 0, k, 2k, ... are held out; 0 holds none out
    aabb: Optional[List[List[float]]] = None  # [[x0, y0, z0], [x1, y1, z1]]; default: from the data


@dataclass
class VolumeFitSettings:
    steps: int = 2000
    seed: int = 0
    rays_per_step: int = 4096
    lr: float = 1e-2
    lr_final: float = 1e-3  # the learning rate decays exponentially to this at the last step
    checkpoint_every: int = 100
    eval_every: int = 0  # 0: about 10 evaluations over the fit
    eval_views: int = 0  # held-out views rendered per evaluation (0: all)
    background: Union[str, float, List[float]] = "random"
    max_minutes: float = 0.0  # stop (with a checkpoint) once training has taken this long; 0: no limit
    clip_spikes: Optional[float] = None  # Adam on a hash grid: spikes are the norm early on, no clipping


@dataclass
class VolumeFitConfig:
    """A checked radiance-field fit configuration (module doc)."""

    path: Path
    text: str
    name: str
    data: VolumeDataConfig
    render: Dict[str, Any]
    field: Dict[str, Any]
    occupancy: Dict[str, Any]
    loss: Dict[str, float]
    fit: VolumeFitSettings
    output: Optional[Path]
    raw: Any = None
    trust_paths: bool = False


def is_volume_config(raw: Any) -> bool:
    """Whether a parsed configuration asks for the volume integrator."""
    render = raw.get("render") if isinstance(raw, dict) else None
    return isinstance(render, dict) and render.get("integrator") == "volume"


def parse_volume_config(raw: dict, path: Path, text: str = "") -> VolumeFitConfig:
    """Check a parsed radiance-field configuration; see the module docstring."""
    path = Path(path)
    top = ConfigTable(raw, "", path)
    name = top.string("name", path.stem)
    for table, why in (("scene", "the field is created to fit the data's bounds"),
                       ("optimize", "every parameter of the field is fitted; set [fit] lr")):
        if table in raw:
            raise ConfigError(f"{path.name}: a volume fit ([render] integrator = \"volume\") takes no "
                              f"[{table}] table: {why}")
    data = _data(top.table("data"))
    render = _render(top.table("render"))
    fld = _field(top.table("field"))
    occ = _occupancy(top.table("occupancy"))
    loss = _loss(top.table("loss"))
    fit = _fit(top.table("fit"))
    out_t = top.table("output")
    output = out_t.path("dir")
    out_t.done()
    top.done()
    return VolumeFitConfig(path, text, name, data, render, fld, occ, loss, fit, output, raw)


def _data(t: ConfigTable) -> VolumeDataConfig:
    dataset = t.path("dataset")
    if dataset is None:
        raise ConfigError(f"{t.file.name}: a volume fit needs data.dataset (a NeRF transforms.json or a COLMAP "
                          "folder of posed photos)")
    if not dataset.exists():
        raise ConfigError(f"{t.file.name}: data.dataset names {dataset}, which does not exist")
    d = VolumeDataConfig(dataset, image_dir=t.path("image_dir"))
    d.scale = t.number("scale", 1.0, 0.0, 16.0, strict_low=True)
    d.holdout_every = t.integer("holdout_every", 8, 0)
    if d.holdout_every == 1:
        raise t.error("holdout_every", "0 (no held-out views) or >= 2 (1 would hold every view out)", 1)
    box = t.get("aabb")
    if box is not None:
        ok = (isinstance(box, list) and len(box) == 2 and all(
            isinstance(c, list) and len(c) == 3 and all(_is_number(x) for x in c) for c in box)
            and all(box[0][k] < box[1][k] for k in range(3)))
        if not ok:
            raise t.error("aabb", "[[x_min, y_min, z_min], [x_max, y_max, z_max]] with min < max", box)
        d.aabb = [[float(x) for x in c] for c in box]
    t.done()
    return d


def _render(t: ConfigTable) -> Dict[str, Any]:
    t.string("integrator", "volume", ("volume",))
    out: Dict[str, Any] = {}
    if "steps_per_diagonal" in t.raw:
        out["steps_per_diagonal"] = t.integer("steps_per_diagonal", 256, 1, 1 << 14)
    if "step_size" in t.raw:
        out["step_size"] = t.number("step_size", None, 0.0, strict_low=True)
    if "early_stop_eps" in t.raw:
        out["early_stop_eps"] = t.number("early_stop_eps", 1e-4, 0.0, 0.5)
    t.done()
    return out


_FIELD_INTS = {"num_levels": (1, 32), "features_per_level": (1, 8), "log2_table_size": (8, 24),
               "base_resolution": (2, 1 << 12), "max_resolution": (2, 1 << 15), "grid_resolution": (2, 512),
               "grid_channels": (1, 64), "hidden_dim": (1, 1024), "geo_feat_dim": (1, 256),
               "color_hidden_dim": (1, 1024), "color_hidden_layers": (0, 8), "sh_degree": (0, 4)}


def _field(t: ConfigTable) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    if "encoding" in t.raw:
        out["encoding"] = t.string("encoding", "hash", ("hash", "dense"))
    if "precision" in t.raw:
        out["precision"] = t.string("precision", "auto", ("auto", "fp32", "bf16", "fp16"))
    if "density_kind" in t.raw:
        out["density_kind"] = t.string("density_kind", "exp", ("exp", "softplus", "relu"))
    if "density_bias" in t.raw:
        out["density_bias"] = t.number("density_bias", 0.0, -30.0, 30.0)
    if "sparse" in t.raw:
        out["sparse"] = t.boolean("sparse", False)
    t.get("density_kind"), t.get("density_bias"), t.get("sparse")
    for key, (lo, hi) in _FIELD_INTS.items():
        if key in t.raw:
            out[key] = t.integer(key, lo, lo, hi)
        else:
            t.get(key)
    t.get("encoding"), t.get("precision")
    t.done()
    return out


def _occupancy(t: ConfigTable) -> Dict[str, Any]:
    out = {"use": t.boolean("use", True), "resolution": t.integer("resolution", 64, 1, 512),
           "threshold": t.number("threshold", 0.01, 0.0), "update_every": t.integer("update_every", 16, 1),
           "warmup_steps": t.integer("warmup_steps", 256, 0)}
    t.done()
    return out


def _loss(t: ConfigTable) -> Dict[str, float]:
    terms = {k: t.number(k, 1.0 if k == "mse" else 0.0, 0.0) for k in VOLUME_IMAGE_TERMS + VOLUME_REGULARIZERS}
    t.done()
    terms = {k: v for k, v in terms.items() if v > 0}
    if not any(k in VOLUME_IMAGE_TERMS for k in terms):
        raise ConfigError(f"{t.file.name}: [loss] needs an image term with a weight > 0 "
                          f"({', '.join(VOLUME_IMAGE_TERMS)})")
    return terms


def _fit(t: ConfigTable) -> VolumeFitSettings:
    f = VolumeFitSettings(steps=t.integer("steps", 2000, 1, MAX_STEPS), seed=t.integer("seed", 0, 0, MAX_SEED))
    f.rays_per_step = t.integer("rays_per_step", 4096, 1, 1 << 20)
    f.lr = t.number("lr", 1e-2, 0.0, strict_low=True)
    f.lr_final = t.number("lr_final", f.lr / 10, 0.0, strict_low=True)
    f.checkpoint_every = t.integer("checkpoint_every", 100, 1)
    f.eval_every = t.integer("eval_every", 0)
    f.eval_views = t.integer("eval_views", 0)
    bg = t.get("background", "random")
    if not (bg == "random" or is_colour_value(bg)
            or (isinstance(bg, list) and len(bg) == 3 and all(is_colour_value(x) for x in bg))):
        raise t.error("background", "'random', a finite number >= 0 or an [r, g, b] list of them", bg)
    f.background = bg
    f.max_minutes = t.number("max_minutes", 0.0, 0.0)
    f.clip_spikes = t.number("clip_spikes", None, 1.0)
    t.done()
    return f


def _is_number(x: Any) -> bool:
    import math

    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
