"""``lumigrad warmup``: compile every kernel ahead of time, so the first render or fit does not wait for it."""

from __future__ import annotations

from ._device import add_device_argument, resolve


def add_parser(sub) -> None:
    p = sub.add_parser(
        "warmup",
        help="compile lumigrad's kernels ahead of time into Warp's kernel cache (once per version and device)",
        description=(
            "lumigrad has no build step at install: NVIDIA Warp compiles its kernels the first time they run "
            "(about 15 s on a CPU) and keeps them in its kernel cache, from which later runs load them at once. "
            "This command does that compile now for every kernel module on --device, and prints each module, "
            "whether it was compiled or already cached, and the cache folder (set WARP_CACHE_PATH to move it)."
        ),
    )
    add_device_argument(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from ..kernels.warmup import cache_dir, warm_up

    device = resolve(args)
    print(f"kernel cache: {cache_dir()}")
    loads, seconds = warm_up(device)
    for load in loads:
        print(f"  {load.name:<45s} {load.kernels:3d} kernels  {load.status}")
    compiled = sum(load.status == "compiled" for load in loads)
    print(f"{len(loads)} modules ready on {device} in {seconds:.1f} s ({compiled} compiled, "
          f"{len(loads) - compiled} from the cache)")
    return 0
