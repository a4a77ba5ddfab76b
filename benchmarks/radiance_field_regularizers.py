"""Floaters, depth and over-fitting with few views: a radiance field fitted with and without each regulariser.

The WaterBottle (or, with ``--asset spot``, the embedded Spot) is rendered from ``--views`` directions by
``examples/make_nerf_dataset.py``; every 8th view is held out and the field is trained on only ``--train``
of the others (spread evenly), where floaters and over-fitting show. Each row trains the same field (the fit's
defaults, ``lumigrad.fitting.volume_fit``) for ``--steps`` steps with the same seed and one change:

* ``none``: colour only;
* ``distortion``: + mip-NeRF 360's distortion loss (distances over the box diagonal);
* ``opacity entropy``: + binary entropy of each ray's opacity;
* ``both``: the two together;
* ``depth``: + depth supervision from the renderer's own depth maps (what a depth sensor would give).

Columns, on the held-out views: PSNR over white; *floater opacity*, the mean rendered opacity on pixels whose
photo is transparent (ideally 0); *depth error*, the mean distance between the rendered and the true surface on
covered pixels, in % of the box diagonal; training PSNR; seconds.

    .venv/bin/python benchmarks/radiance_field_regularizers.py                 # 24 views at 64^2, 6 trained, 400 steps
    .venv/bin/python benchmarks/radiance_field_regularizers.py --quick
"""

from __future__ import annotations

import argparse
import os
import runpy
import tempfile
import time
from pathlib import Path

import lumigrad as lg  # before torch (lumigrad.threads)
import torch
from lumigrad.app.benchmarking import format_table
from lumigrad.fitting.volume_config import parse_volume_config
from lumigrad.fitting.volume_fit import (VolumeData, VolumeTrainer, holdout_psnr, load_volume_data, make_field,
                                         make_occupancy, make_volume_fit)
from lumigrad.volume import camera_rays, render_rays_chunked

ROOT = Path(__file__).resolve().parents[1]
ROWS = [("none", {}), ("distortion", {"distortion": 0.01}), ("opacity entropy", {"opacity_entropy": 0.001}),
        ("both", {"distortion": 0.01, "opacity_entropy": 0.001}), ("depth", {"depth": 1.0})]
COLUMNS = [("row", "regulariser"), ("holdout", "held-out PSNR dB"), ("floaters", "floater opacity"),
           ("depth_err", "depth error % diag"), ("train", "train PSNR dB"), ("seconds", "seconds")]


def true_distances(scene: lg.Scene, camera: lg.Camera) -> torch.Tensor:
    """``[N, H, W]`` distance along each pixel's unit ray to the visible surface (0 on the background)."""
    with torch.no_grad():
        out = lg.render(scene, camera, aovs=("depth", "mask"))
        z = out["depth"][..., 0]
        d = camera_rays(camera).directions
        axis = camera.world_to_cam[..., 2, :3]
        cos = (d * axis.reshape(axis.shape[:-1] + (1, 1, 3))).sum(-1)
    return torch.where(out["mask"][..., 0] > 0.999, z / cos, torch.zeros_like(z))


class DepthTrainer(VolumeTrainer):
    """The fit's trainer plus depth supervision from known distances ``[N, H, W]`` of the training views."""

    def __init__(self, *args, distances: torch.Tensor, weight: float, **kw):
        super().__init__(*args, **kw)
        self.distances, self.depth_weight = distances.reshape(-1), weight

    def _terms(self, out, target):
        terms = super()._terms(out, target)
        idx = self.last_pixels
        known = self.distances.index_select(0, idx)
        error = torch.where(known > 0, out.depth[:, 0] - known, torch.zeros_like(known))  # 0: no surface
        terms["depth"] = (error * error).mean() / self.diagonal ** 2
        return terms


def run_row(config, data: VolumeData, weights: dict, steps: int, distances=None):
    config.loss = {"mse": 1.0, **{k: v for k, v in weights.items() if k != "depth"}}
    config.fit.steps = steps
    field = make_field(config, data.aabb, torch.device("cpu"))
    occupancy = make_occupancy(config, data.aabb, torch.device("cpu"))
    if "depth" in weights:
        trainer = DepthTrainer(config, data, field, occupancy, torch.Generator(), distances=distances,
                               weight=weights["depth"])
        config.loss["depth"] = weights["depth"]
    else:
        trainer = VolumeTrainer(config, data, field, occupancy, torch.Generator())
    trainer.eval_every = 10 ** 9
    fit = make_volume_fit(trainer)
    t0 = time.perf_counter()
    result = fit.run()
    seconds = time.perf_counter() - t0
    return trainer, result, seconds


def evaluate(trainer: VolumeTrainer, truth_distance: torch.Tensor):
    images, distance = trainer.render_holdout(0)
    alpha = trainer.data.holdout_images[..., 3]
    psnr = holdout_psnr(images, trainer.holdout_targets())
    with torch.no_grad():
        rays = camera_rays(trainer.data.holdout_camera)
        _, opacity, _ = render_rays_chunked(trainer.field, rays.origins.reshape(-1, 3), rays.directions.reshape(-1, 3),
                                            step_size=trainer.step_size, occupancy=trainer.occupancy)
        opac = opacity.reshape(alpha.shape)
    floaters = float(opac[alpha == 0].mean())
    covered = (alpha > 0.999) & (truth_distance > 0) & (distance[..., 0] > 0)
    depth_err = float((distance[..., 0] - truth_distance)[covered].abs().mean()) / trainer.diagonal * 100
    return psnr, floaters, depth_err


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=24)
    parser.add_argument("--train", type=int, default=6, help="training views (of the non-held-out ones)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--asset", default=None, help="'spot' for the embedded Spot (default: the WaterBottle)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 9 views of Spot at 16^2, 3 steps")
    args = parser.parse_args(argv)
    if args.quick:
        args.views, args.train, args.size, args.steps, args.asset = 9, 3, 16, 3, "spot"
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.2f}")
    maker = runpy.run_path(str(ROOT / "examples" / "make_nerf_dataset.py"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "data"
        asset = [] if args.asset is None else ["--asset", args.asset]
        made = maker["main"](["--views", str(args.views), "--size", str(args.size), "--out", str(folder)] + asset)
        scene = maker["load_scene"](Path(args.asset) if args.asset else maker["BOTTLE"])
        raw = {"data": {"dataset": str(folder / "transforms.json"), "holdout_every": 8},
               "render": {"integrator": "volume"}, "occupancy": {"resolution": 32},
               "fit": {"steps": args.steps, "rays_per_step": 2048, "eval_every": 10 ** 6}}
        config = parse_volume_config(raw, Path(tmp) / "study.toml")
        data = load_volume_data(config, torch.device("cpu"))
        keep = torch.linspace(0, len(data.train_index) - 1, min(args.train, len(data.train_index))).round().long()
        cams = made["cameras"]
        distances = true_distances(scene, cams)
        data = VolumeData(data.train_images[keep], data.train_camera[keep], data.holdout_images,
                          data.holdout_camera, [data.train_index[k] for k in keep.tolist()], data.holdout_index,
                          data.aabb, data.names)
        train_distances = distances[torch.tensor(data.train_index)]
        holdout_distances = distances[torch.tensor(data.holdout_index)]
        rows = []
        for name, weights in ROWS:
            trainer, result, seconds = run_row(config, data, weights, args.steps, train_distances)
            psnr, floaters, depth_err = evaluate(trainer, holdout_distances)
            train = sum(log["psnr_db"] for log in result.logs[-20:]) / len(result.logs[-20:])
            rows.append({"row": name, "holdout": f"{psnr:.2f}", "floaters": f"{floaters:.4f}",
                         "depth_err": f"{depth_err:.2f}", "train": f"{train:.2f}", "seconds": f"{seconds:.0f}"})
            print(f"  {name}: held-out {psnr:.2f} dB, floaters {floaters:.4f}, depth error {depth_err:.2f} %",
                  flush=True)
    print(f"\n{len(data.train_index)} training views, {len(data.holdout_index)} held out, {args.size}^2, "
          f"{args.steps} steps, load average {os.getloadavg()[0]:.2f}")
    print(format_table(rows, COLUMNS))


if __name__ == "__main__":
    main()
