"""A fit problem built from a :class:`~lumigrad.fitting.config.FitConfig`: scenes, target images, cameras,
parameterised unknowns, and the loss of one step.

The scene being fitted gets the target views as one batched camera named ``views``, so its intrinsics and
poses are ordinary scene parameters (``cameras.views.K``, ``cameras.views.world_to_cam``). With synthetic
targets a second, *true* scene (the same file, or ``data.truth``, with ``data.set`` applied) is rendered
from ring cameras around it; its parameters are what the report measures the recovered ones against.
"""

from __future__ import annotations

import copy
import fnmatch
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Union

import torch

from ..cameras.camera import Camera
from ..optim.distributed import shard, shard_weight
from ..optim.fit import FitDivergedError
from ..integrators import RenderOutput, get_integrator, integrator_settings, render
from ..scene.light_types import LIGHT_TYPES
from ..scene.lights import DirectionalLight, SHLight
from ..scene.params import VERTICES
from ..scene.scene import Film, Scene
from .config import ConfigError, FitConfig
from .losses import LOSS_TERMS
from .parameterize import Parameterization, apply_init, make_parameterization
from .streamed_targets import StreamedTargets
from .tiled_step import check_tiling
from .time_axis import TimeAxis, time_axis

__all__ = ["Problem", "build_problem", "load_scene", "scale_camera"]

VIEWS = "views"
#: The buffers the depth and normal loss terms compare (hard, as a depth sensor sees them: see render_settings).
GEOMETRY_AOVS = ("depth", "normal", "mask")


@dataclass
class Problem:
    """Everything a fit needs; :meth:`loss` is the ``loss_fn`` of :class:`~lumigrad.optim.Fit`."""

    config: FitConfig
    scene: Scene
    # [N, H, W, C] (C = 3 or 4: alpha is the object mask); [T * N, ...] over time; with [data] stream, views decoded
    # when asked for (a StreamedTargets)
    targets: Union[torch.Tensor, StreamedTargets]
    truth: Optional[Scene]
    groups: Dict[str, List[Parameterization]]
    initial_values: Dict[str, torch.Tensor] = field(default_factory=dict)
    adversary: Optional[object] = None  # an AdversarialLoss when [loss] adversarial > 0
    target_geometry: Optional[torch.Tensor] = None  # [N, H, W, 4] depth and normal, for the depth / normal terms
    generator: torch.Generator = field(default_factory=torch.Generator)  # per-step views; Fit seeds, checkpoints it
    rank: int = 0  # a distributed fit: this process renders its shard of each step's views (fitting.distributed)
    world_size: int = 1
    time_axis: Optional[TimeAxis] = None  # targets over animation times: (time, view) pairs, time-major
    _scaled: Dict[Tuple[str, int, int], torch.Tensor] = field(default_factory=dict)

    @property
    def camera(self) -> Camera:
        return self.scene.cameras[VIEWS]

    def leaves(self, group: str) -> List[torch.Tensor]:
        return [leaf for p in self.groups[group] for leaf in p.leaves]

    def apply(self, step: Optional[int] = None) -> None:
        """Write every parameterised value into the scene.

        Raises:
            FitDivergedError: a value is NaN / Inf although its leaves are finite (e.g. ``exp`` of a huge
                leaf), naming the parameter and its group.
        """
        for group, params in self.groups.items():
            for p in params:
                value = p.apply(self.scene)
                if step is not None and not bool(torch.isfinite(value).all()):
                    raise FitDivergedError(f"step {step}: scene parameter {p.names[0]!r} of group {group!r} became "
                                           "NaN or Inf through its map; lower the group's lr")

    def optimised_names(self) -> List[str]:
        return [p.names[0] for params in self.groups.values() for p in params]

    def fitted_meshes(self) -> List[str]:
        """Names of the meshes whose vertices are optimised, sorted."""
        infos = [self.scene.param_info(n) for n in self.optimised_names()]
        return sorted({i.owner for i in infos if i.group == "meshes" and i.kind == VERTICES})

    def background(self):
        return _background(self.config, self.targets)

    def render_output(self, camera: Camera, aovs: Tuple[str, ...] = (), step: Optional[int] = None,
                      pairs: Optional[torch.Tensor] = None, scene: Optional[Scene] = None) -> RenderOutput:
        """The scene seen by ``camera`` through ``[render]``'s integrator, over ``[fit] background``; with
        ``[render] spp`` samples per pixel and, for a step, a seed of its own (the fit's seed and the step: a
        Monte Carlo renderer's noise changes from step to step, and a resumed fit draws the same).

        ``pairs`` picks targets (indices into ``targets``, sorted over time; default all): views of
        ``camera``, or with a time axis (time, view) pairs, each time rendered from the scene posed then.
        ``scene`` renders another scene (e.g. one posed at some time) instead, as it is."""
        seed = self.step_seed(step)
        settings = render_settings(self.config, self.targets)

        def render_one(scene: Scene, seen: Camera) -> RenderOutput:
            return render(scene, seen, integrator=self.config.render.integrator, aovs=aovs,
                          spp=self.config.render.spp, seed=seed, **settings)

        if scene is not None:
            return render_one(scene, camera)
        if self.time_axis is not None:
            return self.time_axis.render(self.scene, camera, render_one, pairs)
        return render_one(self.scene, camera if pairs is None else camera[pairs])

    def step_seed(self, step: Optional[int]) -> int:
        """The seed of a step's render (the fit's seed outside steps)."""
        return self.config.fit.seed if step is None else (self.config.fit.seed * 1_000_003 + step + 1) % (1 << 62)

    def render_views(self, camera: Optional[Camera] = None) -> torch.Tensor:
        """``[N, H, W, 4]`` colour and alpha of the scene seen by ``camera`` (default: the target views); with a
        time axis ``[T * N, H, W, 4]``, every time."""
        return self.render_output(camera or self.camera).rgba

    def resolution_scale(self, step: int) -> float:
        fraction = step / max(self.config.fit.steps, 1)
        scale = 1.0
        for start, s in self.config.fit.coarse_to_fine:
            if fraction >= start:
                scale = s
        return scale

    def targets_at(self, camera: Camera, index: Optional[torch.Tensor] = None, what: str = "targets") -> torch.Tensor:
        """``targets`` (or ``target_geometry``) of the views ``index`` (default all) at ``camera``'s resolution
        (area-averaged; cached for held targets, per call for streamed ones)."""
        full = getattr(self, what)
        same_size = (camera.width, camera.height) == (self.camera.width, self.camera.height)
        if isinstance(full, StreamedTargets):
            picked = full[slice(None) if index is None else index]
            return picked if same_size else _area_resized(picked, camera)
        if not same_size:
            key = (what, camera.width, camera.height)
            if key not in self._scaled:
                self._scaled[key] = _area_resized(full, camera)
            full = self._scaled[key]
        return full if index is None else full[index]

    def loss(self, step: int):
        """One step's loss and its logged terms (:func:`lumigrad.fitting.losses.total_loss`)."""
        from .losses import total_loss

        self.apply(step)
        camera, index = self.camera, None
        n = len(self.targets)
        k = self.config.fit.views_per_step
        if 0 < k < n:
            index = torch.randperm(n, generator=self.generator)[:k]
        weight, drawn = 1.0, None
        if self.world_size > 1:  # every rank drew the same views; each renders its share of them
            drawn = torch.arange(n) if index is None else index
            index = shard(drawn, self.rank, self.world_size)
        if index is not None and self.time_axis is not None:
            index = index.sort().values  # one render per time
        scale = self.resolution_scale(step)
        if scale != 1.0:
            camera = scale_camera(camera, scale)
        if drawn is not None:
            weight = self.share_weight(camera, drawn, index)
        targets = self.targets_at(camera, index)
        if self.config.render.tile:
            from .tiled_step import tiled_step_loss

            loss, log = tiled_step_loss(self, camera if index is None else camera[index], targets, step)
            return (loss * weight if weight != 1.0 else loss), log
        out = self.render_output(camera, GEOMETRY_AOVS if self.target_geometry is not None else (), step, index)
        images = out.rgba
        check_finite_render(images, step)
        geometry = target_geometry = None
        if self.target_geometry is not None:
            geometry = torch.cat([out.aovs[name] for name in GEOMETRY_AOVS], -1)
            target_geometry = self.targets_at(camera, index, "target_geometry")
        loss, log = total_loss(self, images, targets, geometry, target_geometry)
        return (loss * weight if weight != 1.0 else loss), log


    def share_weight(self, camera: Camera, drawn: torch.Tensor, share: torch.Tensor) -> float:
        """The factor on this rank's loss (over the views ``share`` of the step's ``drawn`` views) that makes the
        ranks' average the one-process loss: by the views' masked pixels when every image term is a masked
        per-pixel mean (``mask = "alpha"``: the one-process mean pools the masks of all drawn views), else by
        the number of views (:func:`~lumigrad.optim.shard_weight`)."""
        config = self.config
        pooled = config.mask == "alpha" and all(LOSS_TERMS[name].per_pixel for name in config.loss
                                                if LOSS_TERMS[name].data)
        if pooled:
            sums = self.view_mask_sums(camera)
            total = float(sums[drawn].sum())
            if total > 0:
                return self.world_size * float(sums[share].sum()) / total
        return shard_weight(len(share), len(drawn), self.world_size)

    def view_mask_sums(self, camera: Camera) -> torch.Tensor:
        """``[N]`` float64: each target's alpha summed at ``camera``'s resolution (computed once per resolution;
        streamed targets are decoded one view at a time for it)."""
        key = ("mask sums", camera.width, camera.height)
        if key not in self._scaled:
            if isinstance(self.targets, StreamedTargets):
                sums = [self.targets_at(camera, torch.tensor([k]))[..., 3].double().sum() for k in range(len(self.targets))]
                self._scaled[key] = torch.stack(sums).cpu()
            else:
                self._scaled[key] = self.targets_at(camera)[..., 3].double().sum((1, 2)).cpu()
        return self._scaled[key]


def check_finite_render(images: torch.Tensor, step: int) -> None:
    """Raise :class:`FitDivergedError` when a step's render holds NaN or Inf (with finite parameters: e.g. a light
    of 1e38)."""
    if not bool(torch.isfinite(images).all()):
        raise FitDivergedError(f"step {step}: the rendered images hold NaN or Inf values although every parameter "
                               "is finite; lower the learning rates or bound the parameters with a map")


def _area_resized(images: torch.Tensor, camera: Camera) -> torch.Tensor:
    """``images [N, H, W, C]`` area-averaged to ``camera``'s size."""
    t = torch.nn.functional.interpolate(images.permute(0, 3, 1, 2), size=(camera.height, camera.width), mode="area")
    return t.permute(0, 2, 3, 1).contiguous()


def scale_camera(camera: Camera, scale: float) -> Camera:
    """The camera seeing the same view with ``scale`` times as many pixels per side (at least one)."""
    return camera.resized(max(1, round(camera.width * scale)), max(1, round(camera.height * scale)))


# ------------------------------------------------------------------------------------------------ set-up
def build_problem(config: FitConfig, device: torch.device = torch.device("cpu")) -> Problem:
    """Load the scenes and targets of ``config`` and parameterise its unknowns.

    Raises:
        ConfigError: a parameter pattern matches nothing, a parameter is claimed twice, or the data cannot
            serve the chosen losses (naming the key).
    """
    _check_render(config)
    check_tiling(config)
    sc = config.scene
    scene = _with_lights(load_scene(config), config)
    truth = axis = None
    if config.data.synthetic:
        if config.data.truth in (None, sc.file):  # the same file: copy it rather than read and decode it again
            truth = copy.deepcopy(scene)
        else:
            truth = _with_lights(load_scene(config, config.data.truth), config)
        _set_truth(truth, config)
        camera = ring_cameras(truth, config)
        truth.add_camera(VIEWS, camera)
        axis = time_axis(config, truth, len(camera))
        with torch.no_grad():
            targets, target_geometry = _render_targets(truth, camera, config, axis)
        scene.add_camera(VIEWS, Camera(camera.K.clone(), camera.world_to_cam.clone(), camera.width, camera.height,
                                       camera.near, camera.far))
    else:
        from ..io.dataset import read_dataset

        d = config.data
        try:
            data = read_dataset(d.dataset, image_dir=d.image_dir, scale=d.scale, views=d.view_indices,
                                trust_paths=config.trust_paths, lazy=d.stream, cache_bytes=int(d.cache_mb * (1 << 20)))
            targets = StreamedTargets(data) if d.stream else data.images
        except (ValueError, FileNotFoundError) as exc:
            raise ConfigError(f"{config.path.name}: data.dataset: {exc}") from None
        camera = data.camera
        scene.add_camera(VIEWS, camera)
        target_geometry = _photo_depth(data, config)
    _check_losses(config, targets)
    scene, truth = _to(scene, device), (_to(truth, device) if truth is not None else None)
    targets = targets.to(device)
    problem = Problem(config, scene, targets, truth, {},
                      target_geometry=None if target_geometry is None else target_geometry.to(device), time_axis=axis)
    _parameterize(problem)
    for name in config.loss:
        setup = LOSS_TERMS[name].setup
        if setup is not None:
            setup(problem)
    return problem


def load_scene(config: FitConfig, path=None) -> Scene:
    """The scene of ``path`` (default ``[scene]``): a glTF scene, a mesh file, or the primitive."""
    from ..geometry.subdivide import icosphere
    from ..io.registry import load
    from ..mesh import Mesh
    from ..scene.from_mesh import as_scene, scene_from_mesh

    sc = config.scene
    if path is None and sc.primitive is not None:
        verts, faces = icosphere(sc.subdivisions, sc.radius)
        verts = verts + torch.tensor(sc.center)
        return scene_from_mesh(Mesh(verts, faces))
    path = path or sc.file
    try:
        obj = load(path, trust_paths=config.trust_paths)
    except (ValueError, FileNotFoundError) as exc:
        raise ConfigError(f"{config.path.name}: cannot load the scene: {exc}") from None
    if isinstance(obj, Mesh) and sc.texture is not None and path == sc.file:
        from ..io.image import read_image

        if obj.uv is None:
            raise ConfigError(f"{config.path.name}: scene.texture needs texture coordinates, and {path} has none")
        obj.texture = read_image(sc.texture)[..., :3]
    try:
        return as_scene(obj, str(path))
    except ValueError as exc:
        raise ConfigError(f"{config.path.name}: {exc}") from None


def _with_lights(scene: Scene, config: FitConfig) -> Scene:
    sc = config.scene
    if sc.environment is not None:
        from ..io.environment import read_environment

        scene.add_light("environment", read_environment(sc.environment, size=sc.environment_size,
                                                        visible=config.fit.background == "environment"))
    for light in sc.lights:
        scene.add_light(light.name, LIGHT_TYPES[light.type].from_settings(dict(light.settings)))
    if not scene.lights and sc.default_lights:
        sh = torch.zeros(9, 3)
        sh[0] = 0.25 * math.sqrt(4 * math.pi)  # a uniform sky of radiance 0.25
        scene.add_light("sky", SHLight(sh))
        scene.add_light("key", DirectionalLight(torch.tensor([-0.4, -1.0, 0.6]), torch.tensor(1.5)))
    scene.film = Film(tone=sc.tone, encode=sc.encode,
                      pixel_filter=sc.pixel_filter if sc.pixel_filter is not None else scene.film.pixel_filter)
    return scene


def _set_truth(truth: Scene, config: FitConfig) -> None:
    params = truth.parameters()
    for name, value in config.data.set.items():
        if name not in params:
            raise ConfigError(f"{config.path.name}: data.set names {name!r}, which the true scene does not have; "
                              f"names look like {_some(params)}")
        old = params[name]
        try:
            new = apply_init(old, value, f"data.set.{name}")
        except ValueError as exc:
            raise ConfigError(f"{config.path.name}: {exc}") from None
        truth[name] = new


def ring_cameras(scene: Scene, config: FitConfig) -> Camera:
    """``data.views`` cameras on a ring around the scene's bounding sphere, alternating above and below."""
    d = config.data
    verts = scene.flatten().verts.detach().float()
    if verts.shape[0] == 0:
        raise ConfigError(f"{config.path.name}: synthetic targets are rendered from cameras framing the scene's "
                          "triangles, and the scene has none")
    lo, hi = verts.min(0).values, verts.max(0).values
    centre, radius = (lo + hi) / 2, max(float((hi - lo).norm()) / 2, 1e-6)
    half_fov = math.radians(d.fov) / 2
    distance = d.distance * radius / math.sin(half_fov)
    k = torch.arange(d.views, dtype=torch.float32)
    azimuth = k * (2 * math.pi / d.views) + 0.3
    elevation = torch.where(k % 2 == 0, torch.tensor(d.elevation), torch.tensor(-0.5 * d.elevation))
    elevation = torch.deg2rad(elevation)
    direction = torch.stack([elevation.cos() * azimuth.sin(), elevation.sin(), -elevation.cos() * azimuth.cos()], -1)
    eye = centre + distance * direction
    width, height = d.size
    return Camera.look_at(eye, centre.expand_as(eye), torch.tensor([0.0, 1.0, 0.0]), fov_y=2 * half_fov,
                          width=width, height=height, near=max(1e-3, distance - 2 * radius),
                          far=distance + 2 * radius)


def _photo_depth(data, config: FitConfig) -> Optional[torch.Tensor]:
    """``[N, H, W, 4]`` depth maps read beside the photos (normals zero: not measured) for the depth term."""
    normal_terms = _terms_needing(config, "normal")
    if normal_terms:
        raise ConfigError(f"{config.path.name}: loss.{normal_terms[0]} needs normal targets, which lumigrad renders "
                          "for synthetic data; normal maps beside photos are not read")
    depth_terms = _terms_needing(config, "depth")
    if not depth_terms:
        return None
    if config.data.depth_dir is None:
        raise ConfigError(f"{config.path.name}: loss.{depth_terms[0]} with photos needs data.depth_dir, the folder of "
                          "their depth maps (<photo stem>.npy, .exr or 16-bit .png)")
    from ..io.dataset import read_depth_maps

    try:
        depth = read_depth_maps(data, config.data.depth_dir, config.data.depth_scale, trust_paths=config.trust_paths)
    except (ValueError, FileNotFoundError) as exc:
        raise ConfigError(f"{config.path.name}: data.depth_dir: {exc}") from None
    return torch.cat([depth, torch.zeros(depth.shape[:-1] + (3,), dtype=depth.dtype)], -1)


def _render_targets(truth: Scene, camera: Camera, config: FitConfig,
                    axis: Optional[TimeAxis] = None) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """``[N, H, W, 4]`` colour and alpha of the true scene, and ``[N, H, W, 4]`` true depth and normals when a
    depth or normal term is asked for (else None), from one render (one per time of ``axis``: ``[T * N, ...]``)."""
    geometry = bool(_terms_needing(config, "depth") or _terms_needing(config, "normal"))

    def render_one(scene: Scene, seen: Camera) -> RenderOutput:
        return render(scene, seen, integrator=config.render.integrator, aovs=GEOMETRY_AOVS if geometry else (),
                      spp=config.render.target_spp, seed=(config.fit.seed + 7919) % (1 << 62),
                      **render_settings(config, camera.K))

    out = render_one(truth, camera) if axis is None else axis.render(truth, camera, render_one)
    return out.rgba, (torch.cat([out.aovs["depth"], out.aovs["normal"]], -1) if geometry else None)


def _check_render(config: FitConfig) -> None:
    """The ``[render]`` integrator offers the buffers the depth and normal terms compare."""
    terms = _terms_needing(config, "depth") + _terms_needing(config, "normal")
    if not terms:
        return
    name = config.render.integrator
    missing = [a for a in GEOMETRY_AOVS if a not in get_integrator(name, **config.render.settings).aov_names]
    if missing:
        raise ConfigError(f"{config.path.name}: loss.{terms[0]} needs the AOVs {', '.join(GEOMETRY_AOVS)}, and "
                          f"render.integrator {name!r} does not give {', '.join(missing)}")


def render_settings(config: FitConfig, like: torch.Tensor) -> Dict[str, object]:
    """The integrator settings of a fit: ``[render]``'s, ``[fit] background`` (on ``like``'s device and dtype),
    and hard AOVs (``use_aov_antialias = false``, as a depth sensor sees the scene) unless ``[render]`` says
    otherwise; the latter two only for integrators that have such settings."""
    known = integrator_settings(config.render.integrator)
    settings: Dict[str, object] = {"use_aov_antialias": False} if "use_aov_antialias" in known else {}
    settings.update(config.render.settings)
    if "background" in known:
        settings["background"] = _background(config, like)
    return settings


def _background(config: FitConfig, like: torch.Tensor):
    """``[fit] background`` as ``render`` takes it, on ``like``'s device and dtype."""
    bg = config.fit.background
    return bg if bg == "environment" else torch.as_tensor(bg, dtype=like.dtype, device=like.device)


def _terms_needing(config: FitConfig, need: str) -> List[str]:
    """The ``[loss]`` terms of ``config`` (weight > 0) that need ``need`` (see ``LossTerm.needs``)."""
    return [name for name in config.loss if need in LOSS_TERMS[name].needs]


def _check_losses(config: FitConfig, targets: torch.Tensor) -> None:
    has_alpha = targets.shape[-1] == 4
    for term in _terms_needing(config, "alpha"):
        if not has_alpha:
            raise ConfigError(f"{config.path.name}: loss.{term} needs target masks (photos with an alpha "
                              "channel); these have none")
    if config.mask == "alpha" and not has_alpha:
        raise ConfigError(f"{config.path.name}: loss.mask = 'alpha' needs photos with an alpha channel")
    for term in config.loss:
        check = LOSS_TERMS[term].check
        if check is not None:
            check(config, targets)


def _to(scene: Scene, device: torch.device) -> Scene:
    return scene if device.type == "cpu" else scene.to(device)


def _parameterize(problem: Problem) -> None:
    config, scene = problem.config, problem.scene
    params = scene.parameters()
    claimed: Dict[str, str] = {}
    for k, group in enumerate(config.optimize):
        where = f"optimize[{k}]"
        names = []
        for pattern in group.params:
            hits = [n for n in params if fnmatch.fnmatchcase(n, pattern)]
            if not hits:
                raise ConfigError(f"{config.path.name}: {where}.params: no scene parameter matches {pattern!r}"
                                  f"{_closest(pattern, list(params))}; the scene has {len(params)} parameters: "
                                  f"{', '.join(params)}")
            names += [n for n in hits if n not in names]
        by_tensor: Dict[int, List[str]] = {}
        for n in names:
            if n in claimed:
                raise ConfigError(f"{config.path.name}: {n!r} is in both [[optimize]] groups {claimed[n]!r} and "
                                  f"{group.name!r}")
            claimed[n] = group.name
            by_tensor.setdefault(id(params[n]), []).append(n)
        out = []
        for same in by_tensor.values():
            name = same[0]
            try:
                start = apply_init(params[name], group.init, where)
                out.append(make_parameterization(group.map, same, start, where, info=scene.param_info(name),
                                                 lambda_=group.lambda_, shared=group.shared))
            except ValueError as exc:
                raise ConfigError(f"{config.path.name}: {exc}") from None
        problem.groups[group.name] = out
    with torch.no_grad():
        problem.apply()
        problem.initial_values = {n: scene[n].detach().clone() for n in problem.optimised_names()}


def _closest(pattern: str, names: List[str]) -> str:
    """`` (did you mean 'a' or 'b'?)`` for the names closest to a pattern that matched nothing, else ``""``."""
    import difflib

    close = difflib.get_close_matches(pattern, names, n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def _some(params, count: int = 4) -> str:
    names = list(params)
    shown = ", ".join(names[:count])
    return shown + (f", ... ({len(names)} in all)" if len(names) > count else "")

