"""Inverse rendering of a glTF asset: recover its roughness, metallic and the environment light from photos.

The asset is read with :func:`lumigrad.io.read_gltf` (default: Khronos' WaterBottle, every PBR texture slot,
from ``../shared/data``; the embedded Spot cow when that folder is absent) into a :class:`lumigrad.Scene`.
Its textures are known; unknown are the material's ``roughness_factor`` and ``metallic_factor`` (glTF
multiplies the roughness / metallic texture channels by them) and the lighting: an ``--env-size`` equirect
environment map (default 8 x 16 texels, area-averaged from the studio HDR in ``../shared/data``, or a
synthetic sky without it). The targets are ``--views`` renders at ``--size`` pixels through a film with
Reinhard tone mapping and sRGB encoding, like photographs.

**Ambiguity.** Light intensity and albedo trade against each other; the base colour textures are known and
fixed here, which pins the environment's scale. Directions that no view reflects (below the object) are not
determined; the report gives the map's relative RMS error with texels weighted by how much they affect
the images, and the error of the irradiance it gives a diffuse surface (all normals), which is determined.

**Fit.** :class:`lumigrad.optim.Fit` runs Adam on the mean squared error of the encoded images, factors
through a sigmoid (kept in [0, 1]) and environment texels through ``exp`` (positive) as two parameter groups,
fed to the scene with ``scene[name] = value``. With ``--checkpoint-dir`` it writes a checkpoint every 25
steps, and running the same command again resumes from the last one (bit for bit).

    python examples/05_inverse_rendering_gltf.py --steps 300 --views 4 --size 96 --out gltf-out
"""

import argparse
import math
import time
from pathlib import Path
from typing import Dict

import torch

import lumigrad as lg
from lumigrad.app.demo import psnr
from lumigrad.optim import Fit, ParamGroup

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
BOTTLE = DATA / "gltf-water-bottle" / "glTF" / "WaterBottle.gltf"
STUDIO = DATA / "envmap-studio-small-03" / "studio_small_03_1k.hdr"
TRUE_ROUGHNESS, TRUE_METALLIC = 0.55, 0.4     # the factors the targets are rendered with
START_ROUGHNESS, START_METALLIC = 0.9, 0.9    # and where the fit starts
LR = {"factors": 0.05, "env": 0.08}


def load_scene(path: Path) -> lg.Scene:
    """The asset as a scene with one mesh (the WaterBottle, or Spot without ../shared/data)."""
    if path.exists():
        return lg.io.read_gltf(path)
    spot = lg.data.load_spot()
    scene = lg.Scene()
    scene.add_mesh("spot", lg.SceneMesh.from_mesh(spot, lg.shading.Material(
        base_color_texture=spot.texture, metallic_roughness_texture=torch.ones_like(spot.texture))))
    return scene


def true_environment(size) -> torch.Tensor:
    """The lighting the targets are rendered under: the studio HDR, or a sky gradient with a sun patch."""
    if STUDIO.exists():
        env = lg.io.read_environment(STUDIO, size=size).texels
        return env / env.mean()
    h, w = size
    y = torch.linspace(1, -1, h)[:, None, None]
    sky = torch.tensor([0.4, 0.6, 1.0]) * (0.6 + 0.4 * y) + torch.zeros(h, w, 3)
    sky[h // 4, w // 3] = torch.tensor([8.0, 7.0, 5.0])
    return sky.clamp_min(0.05)


def ring_cameras(scene: lg.Scene, views: int, size: int) -> lg.Camera:
    """``views`` cameras on a ring around the mesh's bounding box, slightly above and below its middle."""
    verts = torch.cat([m.world_verts() for m in scene.meshes.values()]).detach()
    lo, hi = verts.min(0).values, verts.max(0).values
    centre, radius = (lo + hi) / 2, float((hi - lo).norm()) * 1.3
    angles = torch.arange(views) * (2 * math.pi / views) + 0.5
    eye = torch.stack([radius * torch.sin(angles), 0.3 * radius * torch.cos(2 * angles),
                       radius * torch.cos(angles)], -1) + centre
    return lg.Camera.look_at(eye, centre.expand_as(eye), torch.tensor([0.0, 1.0, 0.0]), width=size, height=size,
                             fov_y=0.8)


def fit(steps: int, views: int, size: int, env_size, gltf: Path, progress: bool = False,
        checkpoint_dir=None) -> Dict:
    scene = load_scene(gltf)
    (mesh_name,) = scene.meshes
    prefix = f"meshes.{mesh_name}.material"
    truth_env = true_environment(env_size)
    scene.add_light("env", lg.EnvironmentLight(truth_env, prefilter_size=(16, 32), visible=False))
    scene.film = lg.Film(tone="reinhard", encode="srgb")
    cams = ring_cameras(scene, views, size)
    scene[f"{prefix}.roughness_factor"] = torch.tensor(TRUE_ROUGHNESS)
    scene[f"{prefix}.metallic_factor"] = torch.tensor(TRUE_METALLIC)
    with torch.no_grad():
        target = lg.render(scene, cams, background=0.0).rgba

    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    raw = torch.tensor([logit(START_ROUGHNESS), logit(START_METALLIC)], requires_grad=True)
    log_env = torch.full(truth_env.shape, math.log(0.5), requires_grad=True)

    def apply():
        scene[f"{prefix}.roughness_factor"], scene[f"{prefix}.metallic_factor"] = torch.sigmoid(raw)
        scene["lights.env.texels"] = log_env.exp()

    with torch.no_grad():
        apply()
        initial = lg.render(scene, cams, background=0.0).rgba

    def loss_fn(step: int) -> torch.Tensor:
        apply()
        return ((lg.render(scene, cams, background=0.0).rgba - target) ** 2).mean()

    groups = {"factors": ParamGroup([raw], LR["factors"]), "env": ParamGroup([log_env], LR["env"])}
    run = Fit(loss_fn, groups, steps=steps, checkpoint_dir=checkpoint_dir, checkpoint_every=25,
              resume=checkpoint_dir is not None, progress=progress).run()
    losses = run.losses
    with torch.no_grad():
        apply()
        final = lg.render(scene, cams, background=0.0).rgba
        roughness, metallic = torch.sigmoid(raw).tolist()
        env = log_env.exp()
    # How much each texel matters to the images: the gradient of the image sum w.r.t. the true map.
    probe = truth_env.clone().requires_grad_(True)
    scene["lights.env.texels"] = probe
    lg.render(scene, cams, background=0.0).rgb.sum().backward()
    weight = probe.grad.abs().sum(-1, keepdim=True)
    # What diffuse shading sees of the light: irradiance over all normal directions (degree-2 SH).
    normals = torch.nn.functional.normalize(torch.randn(2000, 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    irradiance = [lg.shading.sh_irradiance(normals, lg.shading.sh_project_equirect(e, 2)) for e in (truth_env, env)]
    metrics = {"roughness_error": abs(roughness - TRUE_ROUGHNESS), "metallic_error": abs(metallic - TRUE_METALLIC),
               "env_error_weighted_pct": 100 * _relative_rms(env, truth_env, weight),
               "irradiance_error_pct": 100 * _relative_rms(irradiance[1], irradiance[0]),
               "image_psnr_db": psnr(final[..., :3], target[..., :3]),
               "initial_psnr_db": psnr(initial[..., :3], target[..., :3]),
               "final_loss": losses[-1] if losses else float("nan")}
    return {"metrics": metrics, "losses": losses, "images": (target, initial, final), "env": (truth_env, env),
            "estimate": {"roughness": roughness, "metallic": metallic}}


def _relative_rms(estimate: torch.Tensor, truth: torch.Tensor, weight=None) -> float:
    """``sqrt(sum w (estimate - truth)^2 / sum w truth^2)``."""
    w = torch.ones_like(truth) if weight is None else weight
    return float(((w * (estimate - truth) ** 2).sum() / (w * truth ** 2).sum()).sqrt())


def main(argv=None) -> Dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--size", type=int, default=96, help="image width and height in pixels")
    parser.add_argument("--env-size", type=int, nargs=2, default=(8, 16), metavar=("H", "W"))
    parser.add_argument("--gltf", type=Path, default=BOTTLE, help="the asset (one mesh)")
    parser.add_argument("--out", default=None, help="folder for images, environment maps and a loss plot")
    parser.add_argument("--progress", action="store_true", help="show a progress bar")
    parser.add_argument("--checkpoint-dir", type=Path, default=None,
                        help="write a checkpoint there every 25 steps; run again with it to resume where it stopped")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    result = fit(args.steps, args.views, args.size, tuple(args.env_size), args.gltf, progress=args.progress,
                 checkpoint_dir=args.checkpoint_dir)
    metrics = result["metrics"]
    metrics["seconds"] = time.perf_counter() - t0
    est = result["estimate"]
    print(f"inverse rendering of {args.gltf.name if args.gltf.exists() else 'Spot (embedded)'}: {args.views} views "
          f"at {args.size} px, {args.steps} steps, {metrics['seconds']:.1f} s")
    print(f"  roughness factor   {est['roughness']:.4f} (true {TRUE_ROUGHNESS}, error {metrics['roughness_error']:.4f})")
    print(f"  metallic factor    {est['metallic']:.4f} (true {TRUE_METALLIC}, error {metrics['metallic_error']:.4f})")
    print(f"  environment map    {metrics['env_error_weighted_pct']:.2f} % relative RMS error, texels weighted by "
          "their influence on the images")
    print(f"  irradiance         {metrics['irradiance_error_pct']:.2f} % relative RMS error over all normals")
    print(f"  image PSNR         {metrics['initial_psnr_db']:.2f} dB -> {metrics['image_psnr_db']:.2f} dB")

    if args.out:
        from lumigrad.app.report import save_image_grid, save_loss_plot

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        save_image_grid(out / "views.png", torch.cat(result["images"])[..., :3], columns=args.views)
        truth, env = result["env"]
        scale = float(truth.max())
        lg.io.write_image(out / "environment.png", lg.shading.srgb_encode(
            torch.cat([truth, env], 0).repeat_interleave(8, 0).repeat_interleave(8, 1) / scale))
        save_loss_plot(out / "loss.png", result["losses"])
        print(f"wrote {out}/views.png (rows: target, initial, final), environment.png (true above recovered), loss.png")
    return metrics


if __name__ == "__main__":
    main()
