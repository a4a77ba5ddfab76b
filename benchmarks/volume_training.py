"""Benchmark of radiance-field training and rendering end to end: rays per second, with and without the occupancy
grid, at several sample densities (``lumigrad.volume.render_rays``, the ``"volume"`` integrator).

**Scene.** A :class:`~lumigrad.volume.fields.NerfField` with the defaults of ``lumigrad fit`` (``FIT_FIELD_DEFAULTS``:
hash grid of 16 levels, ``2^17`` rows a level, resolution 16..512, dense gradients, exponential density starting at
one over the box diagonal) over the box ``[-1, 1]^3``. Its density is first pre-trained (``--pretrain`` Adam steps
on random points of the box, loss ``(log(1 + sigma) - log(1 + target))^2``) towards an opaque ball: density 100
inside radius 0.83 (30% of the box's volume), 0 outside; the colour heads are left as initialised. So rays stop
at the ball's surface (early termination) and the occupancy grid sees an object-shaped region, as in a fit of a
NeRF-synthetic object. The occupancy grid is the fit's (64^3 cells, one level, a cell is empty when one step
through it has an optical thickness below 0.01), refreshed once from the pre-trained density.

**Rows:** occupancy grid on / off x ``steps_per_diagonal`` (distance between samples: the box diagonal over it).
**Columns** (medians of ``--repeats`` timed runs after one warm-up):

* ``train samples/ray``: field evaluations per ray of the colour pass (after empty-space skipping and early
  termination; :attr:`RayRender.samples_per_ray`), mean over the timed steps;
* ``train krays/s``: one training step of ``--rays`` rays drawn at random over 16 views (100 x 100, around the box
  at distance 4): ``render_rays`` with jittered samples and a random background, MSE to a fixed random colour,
  backward, one Adam step on every parameter (betas 0.9 / 0.99, eps 1e-15, lr 1e-2, as the fit). The occupancy
  grid's periodic refresh is not in it (its cost per step is printed below the table);
* ``train peak MiB`` and ``bytes/ray``: peak memory of one training step (``lumigrad.app.benchmarking.peak_memory``:
  growth of the peak RSS on CPU, ``torch.cuda.max_memory_allocated`` on CUDA) and per ray;
* ``render samples/ray``: the same count for the 100 x 100 render (evenly spaced samples);
* ``render krays/s 100^2`` / ``200^2``: ``lumigrad.render(scene, camera, integrator="volume")`` of one view
  without gradients (chunks of 16,384 rays, the integrator's default);
* ``render peak MiB 200^2`` and ``bytes/ray``: peak memory of the 200 x 200 render.

Usage::

    .venv/bin/python benchmarks/volume_training.py            # about 4 minutes on 2 CPU cores
    .venv/bin/python benchmarks/volume_training.py --quick    # smoke run: small sizes, one repeat
    .venv/bin/python benchmarks/volume_training.py --device cuda --rays 262144 --steps 128,256,512,1024
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time

import lumigrad as lg  # before torch: lets lumigrad make OpenMP threads wait passively (lumigrad.threads)
import torch
from lumigrad.app.benchmarking import cpu_model, format_table, median, peak_memory, time_call
from lumigrad.fitting.volume_field_io import FIT_FIELD_DEFAULTS
from lumigrad.scene import VolumeShape
from lumigrad.volume import OccupancyGrid, camera_rays, default_step_size, render_rays
from lumigrad.volume.fields import NerfField

BOX = [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0]
#: Radius of the ball the density is pre-trained to: (4/3) pi r^3 is 30% of the box's volume 8.
BALL_RADIUS = (0.3 * 8 * 3 / (4 * math.pi)) ** (1 / 3)
BALL_DENSITY = 100.0
CAMERA_DISTANCE = 4.0
FOV_Y = 0.6
#: The fit's occupancy grid (``[occupancy]`` defaults of ``lumigrad fit``).
OCCUPANCY_RESOLUTION, OCCUPANCY_THICKNESS, OCCUPANCY_UPDATE_EVERY = 64, 0.01, 16


def columns(small: int, large: int) -> list:
    """The table's ``(key, title)`` columns for rendered images of ``small^2`` and ``large^2`` pixels."""
    return [("occupancy", "occupancy grid"), ("steps", "steps/diagonal"), ("train_spr", "train samples/ray"),
            ("train_ms", "train ms/step"), ("train_krays", "train krays/s"), ("train_mem", "train peak MiB"),
            ("train_bpr", "train bytes/ray"), ("render_spr", f"render samples/ray {small}^2"),
            ("render_small", f"render krays/s {small}^2"), ("render_large", f"render krays/s {large}^2"),
            ("render_mem", f"render peak MiB {large}^2"), ("render_bpr", "render bytes/ray")]


def make_field(device: torch.device, pretrain_steps: int, points: int = 16384, seed: int = 0) -> NerfField:
    """The fit's default field over :data:`BOX`, its density pre-trained towards the ball (module doc)."""
    diagonal = math.dist(BOX[:3], BOX[3:])
    settings = dict(FIT_FIELD_DEFAULTS, density_bias=-math.log(diagonal))
    torch.manual_seed(seed)
    field = NerfField(BOX, **settings).to(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    opt = torch.optim.Adam(field.parameters(), lr=1e-2, betas=(0.9, 0.99), eps=1e-15)
    for _ in range(pretrain_steps):
        p = torch.rand(points, 3, generator=gen, device=device) * 2 - 1
        target = torch.where(p.norm(dim=-1) < BALL_RADIUS, BALL_DENSITY, 0.0)
        loss = ((torch.log1p(field.density(p)) - torch.log1p(target)) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return field


def make_occupancy(field: NerfField, step_size: float, device: torch.device) -> OccupancyGrid:
    """The fit's grid for this step (empty: optical thickness of one step below 0.01), refreshed once."""
    grid = OccupancyGrid(BOX, OCCUPANCY_RESOLUTION, threshold=OCCUPANCY_THICKNESS / step_size,
                         update_every=OCCUPANCY_UPDATE_EVERY).to(device)
    grid.update(0, field.density, generator=torch.Generator(device=device).manual_seed(1))
    return grid


def ring_cameras(count: int, size: int, device: torch.device) -> lg.Camera:
    """``count`` cameras on a sphere of radius :data:`CAMERA_DISTANCE` (Fibonacci spiral), looking at the centre."""
    k = torch.arange(count, dtype=torch.float32) + 0.5
    z = 1 - 2 * k / count
    phi = k * math.pi * (3 - math.sqrt(5))
    r = torch.sqrt(1 - z * z)
    eye = CAMERA_DISTANCE * torch.stack([r * torch.cos(phi), z * 0.8, r * torch.sin(phi)], -1)
    eye = CAMERA_DISTANCE * eye / eye.norm(dim=-1, keepdim=True)  # keep away from the poles (up is +y)
    return lg.Camera.look_at(eye, torch.zeros(count, 3), fov_y=FOV_Y, width=size, height=size).to(device)


def training_step(field: NerfField, occupancy, step_size: float, rays: int, device: torch.device, seed: int = 0):
    """A callable doing one training step (module doc) and the list it appends samples per ray to."""
    views = camera_rays(ring_cameras(16, 100, device))
    origins, directions = views.origins.reshape(-1, 3), views.directions.reshape(-1, 3)
    gen = torch.Generator(device=device).manual_seed(seed)
    target = torch.rand(rays, 3, generator=gen, device=device)
    opt = torch.optim.Adam(field.parameters(), lr=1e-2, betas=(0.9, 0.99), eps=1e-15)
    counts = []

    def step():
        idx = torch.randint(origins.shape[0], (rays,), generator=gen, device=device)
        bg = torch.rand(rays, 3, generator=gen, device=device)
        out = render_rays(field, origins[idx], directions[idx], step_size=step_size, occupancy=occupancy,
                          background=bg, jitter=True, generator=gen)
        loss = ((out.rgb - target) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        counts.append(out.samples_per_ray)

    return step, counts


def render_samples_per_ray(field: NerfField, occupancy, step_size: float, camera: lg.Camera) -> float:
    rays = camera_rays(camera)
    with torch.no_grad():
        out = render_rays(field, rays.origins.reshape(-1, 3), rays.directions.reshape(-1, 3), step_size=step_size,
                          occupancy=occupancy)
    return out.samples_per_ray


def measure(field: NerfField, use_occupancy: bool, steps: int, args, device: torch.device) -> dict:
    """One row of the table; the field is restored to its pre-trained state before and after."""
    state = {k: v.clone() for k, v in field.state_dict().items()}
    step_size = default_step_size(field.aabb, steps)
    occupancy = make_occupancy(field, step_size, device) if use_occupancy else None
    step, counts = training_step(field, occupancy, step_size, args.rays, device)
    t_train = median(time_call(step, args.repeats, sync=device))
    counts_timed = counts[1:]
    train_mem, exact = peak_memory(step, device)
    field.load_state_dict(state)
    row = dict(occupancy="on" if use_occupancy else "off", steps=steps,
               train_spr=sum(counts_timed) / len(counts_timed), train_ms=1e3 * t_train,
               train_krays=args.rays / t_train / 1e3, train_mem=train_mem if exact else None,
               train_bpr=int(train_mem * 2**20 / args.rays) if exact else None)
    scene = lg.Scene()
    scene.add_shape("field", VolumeShape(field, occupancy))
    settings = dict(integrator="volume", steps_per_diagonal=steps, use_occupancy=use_occupancy)
    renders = {}
    for key, size in (("render_small", args.small), ("render_large", args.large)):
        camera = ring_cameras(1, size, device)

        def render(camera=camera):
            with torch.no_grad():
                lg.render(scene, camera, **settings)

        renders[key] = render
        row[key] = size * size / median(time_call(render, args.repeats, sync=device)) / 1e3
        if key == "render_small":
            row["render_spr"] = render_samples_per_ray(field, occupancy, step_size, camera)
    render_mem, exact = peak_memory(renders["render_large"], device)
    row["render_mem"] = render_mem if exact else None
    row["render_bpr"] = int(render_mem * 2**20 / args.large ** 2) if exact else None
    return row


def occupancy_update_ms(field: NerfField, device: torch.device, repeats: int) -> tuple:
    """Milliseconds of one refresh of the fit's grid after its warm-up (a quarter of the cells at random and as
    many occupied ones), and the grid's occupied fraction."""
    grid = make_occupancy(field, default_step_size(field.aabb, 256), device)
    grid.warmup_steps = 0
    gen = torch.Generator(device=device).manual_seed(2)
    times = time_call(lambda: grid.update(OCCUPANCY_UPDATE_EVERY, field.density, generator=gen), repeats,
                      sync=device)
    return 1e3 * median(times), grid.fraction_occupied


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rays", type=int, default=4096, help="rays per training step")
    ap.add_argument("--steps", default="128,256,512", help="steps_per_diagonal values, comma-separated")
    ap.add_argument("--small", type=int, default=100, help="side of the small rendered image")
    ap.add_argument("--large", type=int, default=200, help="side of the large rendered image")
    ap.add_argument("--pretrain", type=int, default=150, help="Adam steps pre-training the density to the ball")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true", help="512 rays, 128 steps, 32^2 / 48^2 images, 1 repeat")
    args = ap.parse_args(argv)
    if args.quick:
        args.rays, args.steps, args.small, args.large, args.pretrain, args.repeats = 512, "128", 32, 48, 20, 1
    device = torch.device(args.device)
    load_before = os.getloadavg()
    started = time.perf_counter()
    field = make_field(device, args.pretrain)
    pretrain_s = time.perf_counter() - started
    rows = [measure(field, occ, int(s), args, device) for occ in (True, False) for s in args.steps.split(",")]
    update_ms, occupied = occupancy_update_ms(field, device, args.repeats)
    threads = lg.threads.info() if hasattr(lg, "threads") else {}
    text = "\n".join([
        f"device {device} ({cpu_model() if device.type == 'cpu' else torch.cuda.get_device_name(device)}), "
        f"{os.cpu_count()} CPUs, load average {load_before[0]:.2f} before / {os.getloadavg()[0]:.2f} after, "
        f"torch {torch.__version__}, Python {platform.python_version()}; threads: {threads}",
        f"field: NerfField {FIT_FIELD_DEFAULTS}, density pre-trained to a ball of radius {BALL_RADIUS:.2f} "
        f"({args.pretrain} steps, {pretrain_s:.1f} s); occupancy grid {OCCUPANCY_RESOLUTION}^3: {occupied:.1%} of the "
        f"cells occupied at 256 steps/diagonal; {args.rays} rays a training step",
        format_table(rows, columns(args.small, args.large), digits=1),
        f"occupancy grid refresh (every {OCCUPANCY_UPDATE_EVERY} steps of a fit): {update_ms:.0f} ms, "
        f"{update_ms / OCCUPANCY_UPDATE_EVERY:.0f} ms a step amortised (not in the training column)",
    ])
    print(text)
    return text


if __name__ == "__main__":
    main()
