"""Fit a radiance field to posed photos: what ``lumigrad fit`` runs for ``[render] integrator = "volume"``.

One step draws ``rays_per_step`` pixels at random over the training views (from the fit's generator, so a
resumed fit draws the same ones), composites RGBA targets over a random background colour per ray (so that
the field learns transparency instead of painting the background into the volume; instant-ngp's trick),
renders those rays through the field with jittered samples, and takes one Adam step: SparseAdam on the hash
table (only the rows the step touched move), Adam on the MLPs, the learning rate decaying exponentially from
``lr`` to ``lr_final``. The occupancy grid is refreshed from the field's density every ``update_every`` steps
and checkpointed with it, so a resumed fit continues bit for bit.

Every ``eval_every`` steps the held-out views (``[data] holdout_every``) are rendered and their PSNR logged
against the training time (evaluation time excluded), which is the curve in the report.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

from ..cameras.camera import Camera
from ..io.dataset import read_dataset
from ..optim.distributed import shard, shard_weight
from ..optim.fit import Fit, ParamGroup
from ..volume.fields.nerf import NerfField
from ..volume.occupancy import OccupancyGrid
from ..volume.rays import camera_rays
from ..volume.regularizers import distortion_loss, opacity_entropy_loss
from ..volume.render import default_step_size, render_rays, render_rays_chunked
from .config import ConfigError
from .volume_config import VolumeFitConfig

__all__ = ["VolumeData", "VolumeTrainer", "load_volume_data", "make_volume_fit", "scene_box"]

#: Margin added around a box read from the data (a fraction of its size on each side).
BOX_MARGIN = 0.05


@dataclass
class VolumeData:
    """Posed photos split into training and held-out views.

    Attributes:
        train_images, holdout_images: ``[N, H, W, C]`` in [0, 1], ``C`` 3 or 4 (straight alpha).
        train_camera, holdout_camera: batched cameras (``holdout_camera`` is ``None`` without held-out views).
        train_index, holdout_index: view numbers in the dataset's order.
        aabb: ``[6]`` the box the field is made for.
        names: the dataset's image names, in its order.
    """

    train_images: torch.Tensor
    train_camera: Camera
    holdout_images: Optional[torch.Tensor]
    holdout_camera: Optional[Camera]
    train_index: List[int]
    holdout_index: List[int]
    aabb: torch.Tensor
    names: List[str]


def load_volume_data(config: VolumeFitConfig, device: torch.device) -> VolumeData:
    """Read ``[data] dataset``, split it by ``holdout_every`` and choose the field's box.

    Raises:
        ConfigError: an unreadable or malformed dataset (missing keys, wrong matrix shapes, missing or
            mis-sized images: the reader's message names the file and the frame), fewer than one training view.
    """
    d = config.data
    try:
        data = read_dataset(d.dataset, image_dir=d.image_dir, scale=d.scale, trust_paths=config.trust_paths)
    except (ValueError, FileNotFoundError, OSError) as exc:
        raise ConfigError(f"{config.path.name}: data.dataset: {exc}") from None
    n = len(data)
    holdout = [i for i in range(n) if d.holdout_every and i % d.holdout_every == 0]
    train = [i for i in range(n) if i not in set(holdout)]
    if not train:
        raise ConfigError(f"{config.path.name}: data.holdout_every = {d.holdout_every} leaves no training view of "
                          f"the dataset's {n}")
    cam = data.camera.to(device=device, dtype=torch.float32)
    images = data.images.to(device=device, dtype=torch.float32)
    if d.aabb is not None:
        box = torch.tensor(d.aabb[0] + d.aabb[1], dtype=torch.float32)
    else:
        box = scene_box(d.dataset, cam)
    pick = lambda idx: torch.tensor(idx, dtype=torch.long, device=device)
    return VolumeData(images.index_select(0, pick(train)), cam[pick(train)],
                      images.index_select(0, pick(holdout)) if holdout else None,
                      cam[pick(holdout)] if holdout else None, train, holdout, box.to(device), list(data.names))


def scene_box(dataset: Path, camera: Camera) -> torch.Tensor:
    """``[6]`` the field's box: the dataset's own ``"aabb"`` (a key of lumigrad's and instant-ngp's
    transforms.json) grown by :data:`BOX_MARGIN`, else the region every camera looks at (the point closest to
    all optical axes in the least-squares sense, with half the distance to the nearest camera as half size)."""
    file = dataset / "transforms.json" if Path(dataset).is_dir() else Path(dataset)
    if file.suffix == ".json" and file.is_file():
        try:
            box = json.loads(file.read_text(encoding="utf-8")).get("aabb")
            t = torch.tensor(box, dtype=torch.float32).reshape(2, 3)
            if bool(torch.isfinite(t).all()) and bool((t[1] > t[0]).all()):
                pad = (t[1] - t[0]) * BOX_MARGIN
                return torch.cat([t[0] - pad, t[1] + pad])
        except (ValueError, TypeError, AttributeError, RuntimeError):
            pass
    w2c = camera.world_to_cam.detach().double().cpu().reshape(-1, 4, 4)
    R, t = w2c[:, :3, :3], w2c[:, :3, 3]
    centres = -(R.transpose(1, 2) @ t[..., None])[..., 0]
    axes = R[:, 2, :]  # the camera's viewing direction (+z) in world coordinates
    proj = torch.eye(3, dtype=torch.float64) - axes[:, :, None] * axes[:, None, :]
    A, b = proj.sum(0), (proj @ centres[..., None])[..., 0].sum(0)
    focus = torch.linalg.lstsq(A, b[:, None]).solution[:, 0] if len(w2c) > 1 else centres[0] + axes[0]
    half = 0.5 * float((centres - focus).norm(dim=-1).min())
    return torch.cat([focus - half, focus + half]).float()


def make_field(config: VolumeFitConfig, aabb: torch.Tensor, device: torch.device) -> NerfField:
    """The :class:`NerfField` of ``[field]`` (defaults: :data:`~lumigrad.fitting.volume_field_io.FIT_FIELD_DEFAULTS`)."""
    from .volume_field_io import field_settings

    settings = field_settings(config, aabb.cpu())
    try:
        with torch.random.fork_rng(devices=[]):  # the initial weights follow [fit] seed; the global RNG is untouched
            torch.manual_seed(config.fit.seed)
            return NerfField(aabb.reshape(2, 3).cpu(), **settings).to(device)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{config.path.name}: [field]: {exc}") from None


def fit_step_size(config: VolumeFitConfig, aabb: torch.Tensor) -> float:
    """The distance between samples: ``[render] step_size``, else the box diagonal over ``steps_per_diagonal``."""
    settings = config.render
    return settings.get("step_size") or default_step_size(aabb, settings.get("steps_per_diagonal", 256))


def make_occupancy(config: VolumeFitConfig, aabb: torch.Tensor, device: torch.device) -> Optional[OccupancyGrid]:
    """The occupancy grid of ``[occupancy]``: a cell is empty when the optical thickness of one step through it
    (density x step) stays below ``threshold`` (instant-ngp's minimum optical thickness, 0.01), so the cut does
    not depend on the units of the scene."""
    occ = config.occupancy
    if not occ["use"]:
        return None
    density_cut = occ["threshold"] / fit_step_size(config, aabb)
    return OccupancyGrid(aabb.reshape(2, 3).cpu(), occ["resolution"], threshold=density_cut,
                         update_every=occ["update_every"], warmup_steps=occ["warmup_steps"]).to(device)


class VolumeTrainer:
    """The loss of one step and the held-out evaluation of a radiance-field fit (module doc).

    Args:
        config: the checked configuration.
        data: :func:`load_volume_data`.
        field: the field being fitted; occupancy: its grid or ``None``.
        generator: the fit's generator (pixel choice, background colours, jitter, occupancy updates).
    """

    def __init__(self, config: VolumeFitConfig, data: VolumeData, field: NerfField,
                 occupancy: Optional[OccupancyGrid], generator: torch.Generator):
        self.config, self.data, self.field, self.occupancy, self.generator = config, data, field, occupancy, generator
        self.step_size = fit_step_size(config, data.aabb)
        self.diagonal = float(torch.linalg.vector_norm(data.aabb[3:] - data.aabb[:3]))
        self.early_stop_eps = config.render.get("early_stop_eps", 1e-4)
        with torch.no_grad():
            rays = camera_rays(data.train_camera)
        self.origins = rays.origins.reshape(-1, 3)
        self.directions = rays.directions.reshape(-1, 3)
        self.pixels = data.train_images.reshape(-1, data.train_images.shape[-1])
        steps = config.fit.steps
        self.eval_every = config.fit.eval_every or max(1, steps // 10)
        self.clock = 0.0  # training seconds (evaluation excluded), restored from the logs on resume
        self._step_started = time.perf_counter()
        self.fit: Optional[Fit] = None
        self.rank, self.world_size = 0, 1  # a fit over several processes shards each step's rays

    # ---------------------------------------------------------------------------------------- training
    def background(self, count: int) -> torch.Tensor:
        bg = self.config.fit.background
        dev = self.origins.device
        if bg == "random":
            return torch.rand(count, 3, generator=self.generator, device=dev)
        colour = torch.tensor([float(bg)] * 3 if not isinstance(bg, list) else [float(x) for x in bg], device=dev)
        return colour.expand(count, 3)

    def eval_background(self) -> torch.Tensor:
        """The colour held-out views are composited over: white for ``"random"`` (NeRF's Blender convention)."""
        bg = self.config.fit.background
        if bg == "random":
            return torch.ones(3, device=self.origins.device)
        return self.background(1)[0]

    def loss(self, step: int) -> Tuple[torch.Tensor, Dict[str, float]]:
        if self.fit is not None and step and not self.clock and self.fit.logs:
            self.clock = float(self.fit.logs[-1].get("time_s", 0.0))  # resumed: continue the training clock
        self._step_started = time.perf_counter()
        if self.occupancy is not None:
            self.occupancy.update(step, self.field.density, generator=self.generator)
        R = self.config.fit.rays_per_step
        idx = torch.randint(self.pixels.shape[0], (R,), generator=self.generator, device=self.pixels.device)
        bg = self.background(R)
        jitter, weight = self.generator, 1.0
        if self.world_size > 1:  # every rank drew the same rays; each renders its share (fitting.ranks)
            mine = shard(torch.arange(R, device=idx.device), self.rank, self.world_size)
            idx, bg, weight = idx[mine], bg[mine], shard_weight(len(mine), R, self.world_size)
            # the jitter of each rank's rays from a stream of its own, so the shared generator (which rays,
            # which backgrounds, occupancy updates) stays identical on every rank whatever the shares
            jitter = torch.Generator(device=idx.device).manual_seed(
                (self.config.fit.seed * 1_000_003 + step * 1009 + self.rank) % (1 << 62))
        self.last_pixels = idx  # flat indices (view, row, column) of this step's rays, for extra terms
        target = composite_target(self.pixels.index_select(0, idx), bg)
        out = render_rays(self.field, self.origins.index_select(0, idx), self.directions.index_select(0, idx),
                          step_size=self.step_size, occupancy=self.occupancy, background=bg, jitter=True,
                          generator=jitter, early_stop_eps=self.early_stop_eps)
        terms = self._terms(out, target)
        weights = self.config.loss
        loss = sum(weights[k] * v for k, v in terms.items()) * weight
        mse = float(((out.rgb.detach().clamp(0, 1) - target) ** 2).mean())
        log = {f"loss/{k}": float(v.detach()) for k, v in terms.items()}
        log.update({"psnr_db": -10 * math.log10(max(mse, 1e-10)), "samples_per_ray": out.samples_per_ray})
        return loss, log

    def _terms(self, out, target) -> Dict[str, torch.Tensor]:
        terms: Dict[str, torch.Tensor] = {}
        weights = self.config.loss
        if "mse" in weights:
            terms["mse"] = ((out.rgb - target) ** 2).mean()
        if "huber" in weights:
            terms["huber"] = torch.nn.functional.huber_loss(out.rgb, target, delta=0.1)
        if "opacity_entropy" in weights:
            terms["opacity_entropy"] = opacity_entropy_loss(out.opacity).mean()
        if "distortion" in weights:  # on distances normalised by the box diagonal: one weight for any scene size
            s = out.samples
            terms["distortion"] = distortion_loss(out.weights, s.t_starts / self.diagonal, s.t_ends / self.diagonal,
                                                  s.ray_indices, s.num_rays).mean()
        return terms

    # ---------------------------------------------------------------------------------------- evaluation
    def evaluate(self, step: int, loss: float, log: Dict[str, float]) -> Optional[bool]:
        """The fit's callback: the step's time (from the loss to here: forward, backward and optimiser step), the
        held-out PSNR every ``eval_every`` steps and at the end (not timed); stop at ``max_minutes``."""
        self.clock += time.perf_counter() - self._step_started
        log["time_s"] = self.clock
        last = step + 1 == self.config.fit.steps
        over_time = bool(self.config.fit.max_minutes) and self.clock >= 60 * self.config.fit.max_minutes
        if self.data.holdout_camera is not None and ((step + 1) % self.eval_every == 0 or last or over_time):
            images, _ = self.render_holdout(self.config.fit.eval_views)
            log["holdout_psnr_db"] = holdout_psnr(images, self.holdout_targets(len(images)))
        return True if over_time and not last else None

    def holdout_targets(self, count: Optional[int] = None) -> torch.Tensor:
        images = self.data.holdout_images[:count] if count else self.data.holdout_images
        flat = images.reshape(-1, images.shape[-1])
        return composite_target(flat, self.eval_background().expand(flat.shape[0], 3)).reshape(images.shape[:-1] + (3,))

    @torch.no_grad()
    def render_holdout(self, count: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(rgb [N, H, W, 3], depth [N, H, W, 1])`` of the first ``count`` held-out views (0: all)."""
        camera = self.data.holdout_camera
        n = len(camera) if not count else min(count, len(camera))
        return self.render_views(camera[:n] if n < len(camera) else camera)

    @torch.no_grad()
    def render_views(self, camera: Camera, chunk: int = 1 << 14) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(rgb, distance)`` of every pixel of ``camera`` (evenly spaced samples, the evaluation background)."""
        rays = camera_rays(camera)
        lead = rays.origins.shape[:-1]
        rgb, _, distance = render_rays_chunked(self.field, rays.origins.reshape(-1, 3), rays.directions.reshape(-1, 3),
                                               chunk=chunk, step_size=self.step_size, occupancy=self.occupancy,
                                               background=self.eval_background(), early_stop_eps=self.early_stop_eps)
        return rgb.float().clamp(0, 1).reshape(lead + (3,)), distance.float().reshape(lead + (1,))


def composite_target(pixels: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """``[R, 3]`` colour of RGBA (straight alpha) pixels over ``background [R, 3]``; RGB pixels as they are."""
    if pixels.shape[-1] == 4:
        a = pixels[:, 3:4]
        return pixels[:, :3] * a + background * (1 - a)
    return pixels[:, :3]


def holdout_psnr(images: torch.Tensor, targets: torch.Tensor) -> float:
    """PSNR in dB of ``images`` against ``targets`` (both in [0, 1]): the mean squared error over every view."""
    mse = float(((images.clamp(0, 1) - targets.clamp(0, 1)) ** 2).mean())
    return -10 * math.log10(max(mse, 1e-10))


def make_volume_fit(trainer: VolumeTrainer, *, checkpoint_dir=None, resume: bool = False, progress: bool = False,
                    metadata: Optional[Dict] = None, strategy=None) -> Fit:
    """The :class:`~lumigrad.optim.Fit` of a radiance-field fit: SparseAdam on the hash table, Adam on the rest
    (betas 0.9 / 0.99, eps 1e-15, instant-ngp's), exponential decay from ``lr`` to ``lr_final``."""
    fs = trainer.config.fit
    ratio = fs.lr_final / fs.lr
    schedule = lambda step, steps: ratio ** (step / max(steps - 1, 1))
    groups = {"mlp": ParamGroup(trainer.field.dense_parameters(), lr=fs.lr, schedule=schedule, betas=(0.9, 0.99),
                                eps=1e-15)}
    sparse = trainer.field.sparse_parameters()
    if sparse:
        groups["encoding"] = ParamGroup(sparse, lr=fs.lr, optimizer="sparse_adam", schedule=schedule,
                                        betas=(0.9, 0.99), eps=1e-15)
    extra = {"occupancy": trainer.occupancy} if trainer.occupancy is not None else None
    fit = Fit(trainer.loss, groups, steps=fs.steps, checkpoint_dir=checkpoint_dir,
              checkpoint_every=fs.checkpoint_every, seed=fs.seed, clip_spikes=fs.clip_spikes, progress=progress,
              callbacks=[trainer.evaluate], resume=resume, extra_state=extra, metadata=metadata,
              generator=trainer.generator, global_rng=False, progress_keys=("psnr_db", "holdout_psnr_db"),
              strategy=strategy)
    trainer.fit = fit
    return fit


def run_volume(config: VolumeFitConfig, folder, identity: Dict, resume: bool, progress: bool,
               device: torch.device, strategy=None) -> Tuple[Dict, Optional[Path]]:
    """Train, evaluate and write the output folder of a radiance-field fit; return ``(metrics, report path)``.

    With a :class:`~lumigrad.optim.DistributedStrategy` each rank renders its share of every step's rays; the
    main rank evaluates and writes the folder, the others return ``({"rank": r, ...}, None)``."""
    started = time.perf_counter()
    data = load_volume_data(config, device)
    field = make_field(config, data.aabb, device)
    occupancy = make_occupancy(config, data.aabb, device)
    trainer = VolumeTrainer(config, data, field, occupancy, torch.Generator(device=device))
    from .ranks import finish_training, prepare_volume_ranks

    if strategy is not None:
        prepare_volume_ranks(trainer, strategy, folder.log)
    main = strategy is None or strategy.is_main
    fit = make_volume_fit(trainer, checkpoint_dir=folder.checkpoint_dir, resume=resume, progress=progress and main,
                          metadata={"config": identity}, strategy=strategy)
    result = fit.run()
    follower = finish_training(folder, strategy, result)
    if follower is not None:
        return follower, None
    metrics = volume_metrics(trainer, result, time.perf_counter() - started)
    if strategy is not None:
        metrics["processes"] = strategy.world_size
    from .run_folder import merged_log_lines
    from .volume_outputs import write_volume_outputs

    report = write_volume_outputs(folder.path, trainer, result, metrics, run_log=merged_log_lines(folder.path))
    folder.log(f"finished: {result.steps_done} steps, report {report.name}")
    return metrics, report


def volume_metrics(trainer: VolumeTrainer, result, seconds: float) -> Dict:
    """metrics.json of a radiance-field fit: held-out PSNR of every held-out view at the end, the curve."""
    config, data = trainer.config, trainer.data
    logs = result.logs
    recent = [log["psnr_db"] for log in logs[-50:] if "psnr_db" in log]
    training_seconds = float(logs[-1].get("time_s", 0.0)) if logs else 0.0
    m: Dict = {"name": config.name, "config": str(config.path), "integrator": "volume", "steps": result.steps_done,
               "stopped_early": result.stopped_early, "seconds": round(seconds, 3),
               "training_seconds": round(training_seconds, 3),
               "train_views": len(data.train_index), "holdout_views": len(data.holdout_index),
               "image_size": [data.train_camera.width, data.train_camera.height],
               "aabb": [round(float(x), 6) for x in data.aabb.reshape(6)],
               "rays_per_step": config.fit.rays_per_step,
               "train_psnr_db": round(sum(recent) / len(recent), 3) if recent else None,
               "samples_per_ray": round(float(logs[-1].get("samples_per_ray", 0.0)), 2) if logs else None,
               "final_loss": result.losses[-1] if result.losses else None}
    if training_seconds > 0:
        m["training_rays_per_second"] = round(result.steps_done * config.fit.rays_per_step / training_seconds, 1)
    if trainer.occupancy is not None:
        m["occupied_fraction"] = round(trainer.occupancy.fraction_occupied, 4)
    if data.holdout_camera is not None:
        images, _ = trainer.render_holdout(0)
        m["holdout_psnr_db"] = round(holdout_psnr(images, trainer.holdout_targets()), 3)
        m["holdout_curve"] = [{"step": k + 1, "time_s": round(log["time_s"], 2),
                               "psnr_db": round(log["holdout_psnr_db"], 3)}
                              for k, log in enumerate(logs) if "holdout_psnr_db" in log]
    return m
