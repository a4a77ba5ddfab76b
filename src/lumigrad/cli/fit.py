"""``lumigrad fit CONFIG``: recover scene parameters from images as a configuration file describes."""

from __future__ import annotations

from pathlib import Path

from ._device import add_device_argument, resolve


def add_parser(sub) -> None:
    p = sub.add_parser(
        "fit",
        help="recover scene parameters from images, as a TOML / YAML config describes; writes a report",
        description=(
            "Read CONFIG (TOML or YAML: the scene, the target images or how to render them, which parameters "
            "to optimise and how, the losses and the schedule; see docs/fit.md and examples/configs/), run the "
            "optimisation with a progress bar, and write an output folder with target / initial / final images, "
            "error maps, loss and parameter-error plots, the fitted scene as GLB and OBJ, metrics.json and "
            "report.html. A checkpoint is written every [fit] checkpoint_every steps: after an interruption, "
            "run the same command with --resume to continue exactly where it stopped. One fit at a time may use "
            "an output folder, and a checkpoint resumes only the config it was written for. Exit codes: 0 done, "
            "2 a mistake in the config, data, checkpoint or output folder (the message says what to fix), 3 the "
            "fit diverged (NaN/Inf), 130 interrupted."
        ),
    )
    p.add_argument("config", type=Path, help="the fit configuration (.toml, .yaml or .yml)")
    p.add_argument("-o", "--out", type=Path, default=None,
                   help="output folder (default: the config's [output] dir, else lumigrad-runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue from the output folder's checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh even if the output folder holds the checkpoint or results of an earlier fit")
    p.add_argument("--force", action="store_true",
                   help="with --resume: continue a checkpoint written for a different config or --steps (recorded "
                        "in OUT/run.log; the original config is kept)")
    p.add_argument("--trust-paths", action="store_true",
                   help="let file names inside input files (OBJ mtllib/map_*, glTF URIs, NeRF file_path, COLMAP "
                        "image names) be absolute or leave their file's folder (default: confined to it)")
    p.add_argument("--steps", type=int, default=None, help="override [fit] steps")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override one config key, by its dotted path: --set fit.steps=50 --set render.width=64 "
                        "--set optimize[0].lr=0.02 (repeatable; VALUE is read as TOML: numbers, true/false, "
                        "\"strings\", [arrays]; a bare word is a string). The run folder's copy of the config "
                        "holds the overridden values")
    add_device_argument(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    p.add_argument("--nproc", type=int, default=None, metavar="N",
                   help="run the fit data-parallel in N processes on this machine: the same as `torchrun "
                        "--standalone --nproc-per-node N -m lumigrad fit ...` (for several machines or restarts "
                        "after a failure, call torchrun yourself; see docs/distributed.md)")
    p.add_argument("--dist-timeout", type=float, default=None, metavar="SECONDS",
                   help="in a fit over several processes: how long a process waits for the others in a "
                        "collective before it stops with an error (default 600)")
    p.set_defaults(run=run)


_ERRORS = (("mean_abs_error", "mean |error|"), ("focal_error_pct", "focal error %"),
           ("principal_point_error_px", "principal point error px"), ("rotation_error_deg", "rotation error deg"),
           ("centre_error", "camera centre error"), ("angle_error_deg", "keyframe angle error deg"))


def run(args) -> int:
    from ..fitting import load_config, run_fit

    if args.force and not args.resume:
        raise ValueError("--force goes with --resume (it resumes a checkpoint written for another config)")
    if args.dist_timeout is not None and not args.dist_timeout > 0:
        raise ValueError(f"--dist-timeout must be a number of seconds > 0; got {args.dist_timeout}")
    resolve(args)  # a missing CUDA is said before the config is read
    if args.nproc is not None:
        return _launch(args)
    config = load_config(args.config, overrides=args.overrides) if args.overrides else args.config
    outcome = run_fit(config, args.out, resume=args.resume, overwrite=args.overwrite, steps=args.steps,
                      progress=not args.no_progress, device=args.device, force=args.force,
                      trust_paths=args.trust_paths, dist_timeout=args.dist_timeout)
    m = outcome.metrics
    if outcome.report is None:  # a non-main rank of a fit over several processes: rank 0 reports
        return 0
    if m.get("integrator") == "volume":
        held = m.get("holdout_psnr_db")
        print(f"{m['name']}: {m['steps']} steps, {m['seconds']:.1f} s ({m['training_seconds']:.1f} s training), "
              f"training PSNR {m['train_psnr_db']:.2f} dB, held-out PSNR "
              f"{'n/a (no held-out views)' if held is None else f'{held:.2f} dB'} on {m['holdout_views']} views")
        print(f"report: {outcome.report}")
        return 0
    print(f"{m['name']}: {m['steps']} steps, {m['seconds']:.1f} s, PSNR {m['psnr_initial_db']:.2f} -> "
          f"{m['psnr_final_db']:.2f} dB")
    for name, entry in m["parameters"].items():
        for key, label in _ERRORS:
            if key in entry:
                print(f"  {name}: {label} {entry.get('initial_' + key, float('nan')):.4g} -> {entry[key]:.4g}")
    if "joint_angle_error_deg_final" in m:
        print(f"  joint angles at the {len(m['times'])} target times: error {m['joint_angle_error_deg_initial']:.4g} "
              f"-> {m['joint_angle_error_deg_final']:.4g} deg")
    if "shape_error_pct_final" in m:
        print(f"  surface distance: {m['shape_error_pct_initial']:.3f} % -> {m['shape_error_pct_final']:.3f} % "
              "of the bounding diagonal")
    print(f"report: {outcome.report}")
    return 0


def _launch(args) -> int:
    """``--nproc N``: run this command in N processes under ``torch.distributed.run`` and return its exit code."""
    import subprocess
    import sys

    from ..optim.distributed import launched_by_torchrun

    if args.nproc < 1:
        raise ValueError(f"--nproc must be an integer >= 1; got {args.nproc}")
    if launched_by_torchrun():
        raise ValueError("--nproc starts torchrun itself; a process torchrun started must not pass it")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.nproc}",
               "-m", "lumigrad", "fit", str(args.config)]
    for flag, value in (("--out", args.out), ("--steps", args.steps), ("--dist-timeout", args.dist_timeout)):
        if value is not None:
            command += [flag, str(value)]
    for flag in ("resume", "overwrite", "force", "trust_paths", "no_progress"):
        if getattr(args, flag):
            command.append("--" + flag.replace("_", "-"))
    for override in args.overrides:
        command += ["--set", override]
    command += ["--device", args.device]
    return subprocess.call(command)
