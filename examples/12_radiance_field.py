"""A radiance field from posed photos: render the WaterBottle from 80 views, train a NeRF on 70, test on 10.

Makes the photos with ``examples/make_nerf_dataset.py`` (RGBA, transparent background, every 8th view held
out) unless ``--out/data`` already holds them, then runs ``lumigrad fit`` on
``examples/configs/radiance_field.toml`` (an instant-ngp style hash grid, occupancy grid, random background
colours) for ``--steps`` steps or ``--minutes`` minutes of training, whichever ends first, and prints the
held-out PSNR. Everything the fit writes (report.html with the PSNR-vs-time curve and held-out renders, the
density as a mesh, a turntable) is in ``--out/run``. Measured figures: docs/volume.md.

    python examples/12_radiance_field.py --views 80 --size 100 --minutes 10 --out radiance_field
"""

import argparse
import json
import runpy
from pathlib import Path

from lumigrad.fitting import run_fit
from lumigrad.fitting.config import load_config

HERE = Path(__file__).resolve().parent


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=80)
    parser.add_argument("--size", type=int, default=100, help="photo width and height in pixels")
    parser.add_argument("--asset", default=None, help="a glTF file, or 'spot' (default: the WaterBottle)")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--minutes", type=float, default=10.0, help="training time budget (0: none)")
    parser.add_argument("--rays", type=int, default=4096, help="rays per step")
    parser.add_argument("--out", type=Path, default=Path("radiance_field"))
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    data = args.out / "data"
    if not (data / "transforms.json").exists():
        maker = runpy.run_path(str(HERE / "make_nerf_dataset.py"))
        asset = [] if args.asset is None else ["--asset", args.asset]
        maker["main"](["--views", str(args.views), "--size", str(args.size), "--out", str(data)] + asset)
    text = (HERE / "configs" / "radiance_field.toml").read_text()
    dataset = (data / "transforms.json").resolve().as_posix()
    text = text.replace('dataset = "../../nerf_data/transforms.json"', f'dataset = "{dataset}"')
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "radiance_field.toml").write_text(text)
    config = load_config(args.out / "radiance_field.toml")
    config.fit.steps = args.steps
    config.fit.rays_per_step = args.rays
    config.fit.max_minutes = args.minutes
    config.fit.eval_every = min(config.fit.eval_every, max(1, args.steps // 2))
    outcome = run_fit(config, args.out / "run", overwrite=True, progress=not args.no_progress)
    m = outcome.metrics
    print(f"{m['steps']} steps, {m['training_seconds']:.1f} s of training: held-out PSNR {m['holdout_psnr_db']:.2f} dB "
          f"on {m['holdout_views']} views (training {m['train_psnr_db']:.2f} dB), {m['samples_per_ray']:.1f} "
          f"samples per ray; report {outcome.report}")
    (args.out / "summary.json").write_text(json.dumps(m, indent=2))
    return m


if __name__ == "__main__":
    main()
