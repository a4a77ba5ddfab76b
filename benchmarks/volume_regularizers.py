"""Benchmark: the volume regularizers, with vs without, on small few-view fits of an analytic scene.

Scene: a ball of radius 0.5 and density 40 at the origin, its colour a smooth function of position, on a
transparent (black) background, inside the box ``[-1, 1]^3``. Ground-truth images, opacities and depths are
rendered from the analytic field (256 samples per ray) by cameras on a sphere of radius 3 looking at the
origin. A model of two :class:`~lumigrad.volume.fields.DenseGrid` s (density through softplus, colour through a
sigmoid) is fitted with Adam to the training views (all their rays each step, stratified samples), with and
without each regularizer, and evaluated on held-out views between the training ones.

Columns: ``train`` / ``held-out`` PSNR (dB), ``floaters``: integrated density outside the true ball (farther
than 0.1 from its surface, integral of sigma dV over the box, on a 48^3 lattice), ``train depth`` / ``depth err``:
mean absolute expected-depth error on the training / held-out pixels the ball covers, ``s``: wall time of the fit.

Cases:

* (a) 4 views: floaters. Distortion loss, opacity entropy, sparsity (Cauchy on densities at random points).
* (b) 2 views: total variation of the density grid (``grid_total_variation``).
* (c) 4 and 2 views: depth supervision from the training views' depth maps (background pixels unknown = 0),
  alone and with opacity entropy.
* (d) 3 views, a 64^3 colour grid (many colour DOF): appearance over-fitting (train vs held-out PSNR); TV on
  the colour grid.

Weights were picked from two or three values each on seed 0 (see docs/volume_regularizers.md); the table is
what the default run prints. The 1-minute load average is printed with it.

    .venv/bin/python benchmarks/volume_regularizers.py              # 2.5 min (load 2) to 3.6 min (load 5), 2 cores
    .venv/bin/python benchmarks/volume_regularizers.py --steps 300 --size 48 --seed 1
"""

from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Tuple

import lumigrad  # noqa: F401  (first: lumigrad sets up OpenMP before torch loads it)
import torch

from lumigrad import Camera
from lumigrad.volume import (camera_rays, composite, depth_loss, distortion_loss, opacity_entropy_loss, ray_aabb,
                             sparsity_loss, stratified_samples)
from lumigrad.volume.fields import DenseGrid, grid_total_variation

BOX = [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0]
RADIUS, SIGMA = 0.5, 40.0
MARGIN = 0.1  # floaters: density farther than this outside the ball's surface


def true_density(p: torch.Tensor) -> torch.Tensor:
    return torch.where(p.norm(dim=-1) < RADIUS, SIGMA, 0.0).to(p.dtype)


def true_colour(p: torch.Tensor) -> torch.Tensor:
    x, y, z = p.unbind(-1)
    return torch.stack([0.5 + 0.4 * torch.sin(6 * x), 0.5 + 0.4 * torch.sin(6 * y + 1),
                        0.5 + 0.4 * torch.cos(6 * z)], -1)


def ring_cameras(azimuths_deg, elevation_deg, size, radius=3.0) -> List[Camera]:
    cams = []
    for az in azimuths_deg:
        a, e = math.radians(az), math.radians(elevation_deg)
        eye = radius * torch.tensor([math.cos(e) * math.sin(a), math.sin(e), math.cos(e) * math.cos(a)])
        cams.append(Camera.look_at(eye, torch.zeros(3), fov_y=0.75, width=size, height=size))
    return cams


@dataclass
class Views:
    """Flattened rays of some cameras with their ground truth."""

    origins: torch.Tensor
    directions: torch.Tensor
    t_near: torch.Tensor
    t_far: torch.Tensor
    hit: torch.Tensor
    rgb: torch.Tensor
    opacity: torch.Tensor
    depth: torch.Tensor  # 0 where the ball is not hit (unknown)


def make_views(cams: List[Camera]) -> Views:
    o = torch.cat([camera_rays(c).origins.reshape(-1, 3) for c in cams])
    d = torch.cat([camera_rays(c).directions.reshape(-1, 3) for c in cams])
    near, far, hit = ray_aabb(o, d, torch.tensor(BOX))
    samples = stratified_samples(near, far, hit=hit, num_samples=256, jitter=False)
    p = samples.positions(o, d)
    out = composite(true_density(p), true_colour(p), samples.t_starts, samples.t_ends, samples.ray_indices,
                    samples.num_rays)
    # analytic depth of the ball's front surface
    b = (o * d).sum(-1)
    disc = b * b - ((o * o).sum(-1) - RADIUS ** 2)
    surface = torch.where(disc > 0, -b - disc.clamp_min(0).sqrt(), torch.zeros_like(b))
    return Views(o, d, near, far, hit, out.rgb, out.opacity[:, 0], surface)


@dataclass(frozen=True)
class Config:
    """One fit: views, model size, steps and the regularizer weights (0: off)."""

    train_azimuths: Tuple[float, ...] = (0, 90, 180, 270)
    test_azimuths: Tuple[float, ...] = (45, 225)
    elevation: float = 20.0
    test_elevation: float = 35.0
    size: int = 32
    density_res: int = 32
    colour_res: int = 32
    samples_per_ray: int = 32
    steps: int = 120
    lr: float = 0.1
    seed: int = 0
    distortion: float = 0.0
    entropy: float = 0.0
    sparsity: float = 0.0
    tv_density: float = 0.0
    tv_colour: float = 0.0
    depth: float = 0.0
    depth_kind: str = "huber"
    depth_by_opacity: bool = False
    label: str = ""


class Model(torch.nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.density = DenseGrid(BOX, resolution=cfg.density_res, channels=1, init=-1.0, init_std=0.5)
        self.colour = DenseGrid(BOX, resolution=cfg.colour_res, channels=3, init=0.0, init_std=0.5)

    def sigma(self, p):
        return torch.nn.functional.softplus(self.density(p)[..., 0])

    def forward(self, p):
        return self.sigma(p), torch.sigmoid(self.colour(p))


def render(model: Model, v: Views, n: int, jitter: bool, gen: Optional[torch.Generator]):
    samples = stratified_samples(v.t_near, v.t_far, hit=v.hit, num_samples=n, jitter=jitter, generator=gen)
    sig, rgb = model(samples.positions(v.origins, v.directions))
    out = composite(sig, rgb, samples.t_starts, samples.t_ends, samples.ray_indices, samples.num_rays,
                    return_weights=True)
    return out, samples


def psnr(a, b) -> float:
    return float(-10 * torch.log10(((a - b) ** 2).mean().clamp_min(1e-12)))


def floater_mass(model: Model, res: int = 48) -> float:
    axis = (torch.arange(res) + 0.5) / res * 2 - 1
    p = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    with torch.no_grad():
        sig = model.sigma(p)
    outside = p.norm(dim=-1) > RADIUS + MARGIN
    return float((sig * outside).sum() * (2.0 / res) ** 3)


def fit(cfg: Config, train: Optional[Views] = None, test: Optional[Views] = None) -> Dict[str, float]:
    """Fit the grids to the training views of ``cfg``; return train / held-out metrics and seconds."""
    torch.manual_seed(cfg.seed)
    if train is None:
        train = make_views(ring_cameras(cfg.train_azimuths, cfg.elevation, cfg.size))
    if test is None:
        test = make_views(ring_cameras(cfg.test_azimuths, cfg.test_elevation, cfg.size))
    model = Model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    start = time.perf_counter()
    for _ in range(cfg.steps):
        out, samples = render(model, train, cfg.samples_per_ray, True, gen)
        loss = ((out.rgb - train.rgb) ** 2).mean()
        if cfg.distortion:
            loss = loss + cfg.distortion * distortion_loss(
                out.weights, samples.t_starts, samples.t_ends, samples.ray_indices, samples.num_rays,
                t_near=train.t_near, t_far=train.t_far).mean()
        if cfg.entropy:
            loss = loss + cfg.entropy * opacity_entropy_loss(out.opacity).mean()
        if cfg.sparsity:
            pts = torch.rand(4096, 3, generator=gen) * 2 - 1
            loss = loss + cfg.sparsity * sparsity_loss(model.sigma(pts), kind="cauchy", scale=1.0).mean()
        if cfg.tv_density:
            loss = loss + cfg.tv_density * grid_total_variation(model.density.grid)
        if cfg.tv_colour:
            loss = loss + cfg.tv_colour * grid_total_variation(model.colour.grid)
        if cfg.depth:
            opacity = out.opacity[:, 0] if cfg.depth_by_opacity else None
            loss = loss + cfg.depth * depth_loss(out.depth[:, 0], train.depth, opacity, kind=cfg.depth_kind,
                                                 delta=0.05)
        opt.zero_grad()
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        tr, _ = render(model, train, 96, False, None)
        te, _ = render(model, test, 96, False, None)
    def depth_err(out, views):
        covered = views.opacity > 0.5
        return float((out.depth[:, 0] - views.depth)[covered].abs().mean())

    return {"train": psnr(tr.rgb, train.rgb), "held-out": psnr(te.rgb, test.rgb), "floaters": floater_mass(model),
            "train depth err": depth_err(tr, train), "depth err": depth_err(te, test), "s": seconds}


def cases(base: Config) -> List[Tuple[str, List[Config]]]:
    a = replace(base, train_azimuths=(0, 90, 180, 270))
    b = replace(base, train_azimuths=(0, 90), test_azimuths=(45, 200))
    d = replace(base, train_azimuths=(0, 120, 240), test_azimuths=(60, 180), colour_res=64)
    return [
        ("(a) 4 views: floaters", [
            replace(a, label="none"),
            replace(a, label="distortion 0.1", distortion=0.1),
            replace(a, label="entropy 0.1", entropy=0.1),
            replace(a, label="sparsity 0.01", sparsity=0.01),
            replace(a, label="distortion+entropy 0.1", distortion=0.1, entropy=0.1),
        ]),
        ("(b) 2 views: TV on density", [
            replace(b, label="none"),
            replace(b, label="TV density 1e-3", tv_density=1e-3),
            replace(b, label="TV density 1e-2", tv_density=1e-2),
        ]),
        ("(c) depth supervision", [
            replace(a, label="4 views none"),
            replace(a, label="4 views depth 0.1", depth=0.1),
            replace(a, label="4 views depth+entropy", depth=0.1, entropy=0.1),
            replace(b, label="2 views none"),
            replace(b, label="2 views depth 0.1", depth=0.1),
        ]),
        ("(d) 3 views, 64^3 colour: appearance", [
            replace(d, label="none"),
            replace(d, label="TV colour 0.1", tv_colour=0.1),
        ]),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=Config.steps)
    ap.add_argument("--size", type=int, default=Config.size)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default="", help="run only cases whose title starts with this, e.g. '(a)'")
    args = ap.parse_args()
    base = Config(steps=args.steps, size=args.size, seed=args.seed)
    print(f"load average (1 min) before: {os.getloadavg()[0]:.2f}; torch threads: {torch.get_num_threads()}")
    total = time.perf_counter()
    header = (f"{'case':38s} {'regularizer':22s} {'train':>6s} {'held-out':>8s} {'floaters':>9s} "
              f"{'train depth':>11s} {'depth err':>9s} {'s':>6s}")
    print(header)
    print("-" * len(header))
    views: Dict[tuple, Views] = {}
    results: Dict[Config, Dict[str, float]] = {}
    for title, configs in cases(base):
        if args.only and not title.startswith(args.only):
            continue
        for cfg in configs:
            key_tr = (cfg.train_azimuths, cfg.elevation, cfg.size)
            key_te = (cfg.test_azimuths, cfg.test_elevation, cfg.size)
            for key in (key_tr, key_te):
                if key not in views:
                    views[key] = make_views(ring_cameras(*key))
            key = replace(cfg, label="")
            if key not in results:  # the same fit in two cases runs once
                results[key] = fit(cfg, views[key_tr], views[key_te])
            m = results[key]
            print(f"{title:38s} {cfg.label:22s} {m['train']:6.2f} {m['held-out']:8.2f} {m['floaters']:9.4f} "
                  f"{m['train depth err']:11.4f} {m['depth err']:9.4f} {m['s']:6.1f}", flush=True)
    print(f"total {time.perf_counter() - total:.0f} s; load average (1 min) after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
