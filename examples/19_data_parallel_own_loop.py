"""Your own fit loop, data-parallel: ``lumigrad.optim.Fit`` with a ``DistributedStrategy`` under ``torchrun``.

``lumigrad fit CONFIG`` shards views over processes by itself (docs/distributed.md). A loop of your own does the
same in four lines: join the process group (:func:`lumigrad.optim.init_distributed`), draw the step's views
identically on every rank from ``fit.generator``, keep this rank's share (:func:`lumigrad.optim.shard`) and weight
its mean loss (:func:`lumigrad.optim.shard_weight`); ``Fit`` all-reduces the gradients so every rank takes the
same step. Started without ``torchrun`` the same script runs in one process (``LocalStrategy``) and gives the
same parameters.

The problem: the albedo of a sphere and the intensity of its key light (a fill light of known intensity fixes the
scale between the two), from 8 views rendered with the true values.

    python examples/19_data_parallel_own_loop.py                                    # one process
    torchrun --standalone --nproc-per-node 2 examples/19_data_parallel_own_loop.py  # two processes
"""

import argparse
import math

import torch

import lumigrad as lg
from lumigrad.optim import Fit, ParamGroup, init_distributed, launched_by_torchrun, shard, shard_weight

TRUE_ALBEDO = (0.7, 0.35, 0.2)
TRUE_INTENSITY = 6.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--views", type=int, default=8, help="target views")
    parser.add_argument("--views-per-step", type=int, default=4, help="views drawn per step (the global batch)")
    parser.add_argument("--steps", type=int, default=80)
    return parser.parse_args(argv)


def sphere_scene(albedo: torch.Tensor, intensity: torch.Tensor) -> lg.Scene:
    verts, faces = lg.geometry.icosphere(3)
    colour = torch.cat([albedo, torch.ones(1)])
    scene = lg.Scene()
    scene.add_mesh("ball", lg.SceneMesh(verts, faces, lg.shading.Material(base_color_factor=colour,
                                                                          roughness_factor=0.8)))
    scene.add_light("key", lg.PointLight([2.5, 2.0, -2.0], intensity))     # unknown intensity
    scene.add_light("fill", lg.DirectionalLight([1.0, -0.5, 1.0], 1.0))    # known: it fixes the albedo's scale
    return scene


def ring(views: int, size: int) -> lg.Camera:
    angles = torch.arange(views) * (2 * math.pi / views)
    eye = torch.stack([3 * torch.sin(angles), 0.8 * torch.cos(3 * angles), 3 * torch.cos(angles)], -1)
    return lg.Camera.look_at(eye, torch.zeros(views, 3), fov_y=0.7, width=size, height=size)


def main(argv=None):
    args = parse_args(argv)
    strategy = init_distributed() if launched_by_torchrun() else None
    rank, world = (strategy.rank, strategy.world_size) if strategy else (0, 1)
    cameras = ring(args.views, args.size)
    with torch.no_grad():
        targets = lg.render(sphere_scene(torch.tensor(TRUE_ALBEDO), torch.tensor(TRUE_INTENSITY)), cameras).rgba

    logit_albedo = torch.zeros(3, requires_grad=True)   # albedo 0.5
    log_intensity = torch.zeros((), requires_grad=True)  # intensity 1
    generator = torch.Generator()

    def loss_fn(step):
        views = torch.randperm(args.views, generator=generator)[:args.views_per_step]  # the same on every rank
        mine = shard(views, rank, world)
        scene = sphere_scene(torch.sigmoid(logit_albedo), log_intensity.exp())
        images = lg.render(scene, cameras[mine]).rgba
        loss = (images - targets[mine]).square().mean()
        return loss * shard_weight(len(mine), len(views), world)

    fit = Fit(loss_fn, {"albedo": ParamGroup([logit_albedo], lr=0.08), "light": ParamGroup([log_intensity], lr=0.08)},
              steps=args.steps, generator=generator, global_rng=False, strategy=strategy)
    result = fit.run()
    albedo, intensity = torch.sigmoid(logit_albedo).tolist(), log_intensity.exp().item()
    if rank == 0:
        print(f"{world} process(es), {result.steps_done} steps, final loss {result.losses[-1]:.3e}")
        print(f"albedo {[round(a, 4) for a in albedo]} (true {list(TRUE_ALBEDO)}), light {intensity:.4f} "
              f"(true {TRUE_INTENSITY})")
    if strategy is not None:  # all ranks leave together: a group torn down while another rank uses it aborts
        strategy.barrier()
        torch.distributed.destroy_process_group()
    return {"albedo": albedo, "intensity": intensity, "losses": result.losses}


if __name__ == "__main__":
    main()
