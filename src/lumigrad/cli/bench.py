"""``lumigrad bench``: quick built-in benchmarks on the embedded Spot cow, for your own CPU or GPU."""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path
from typing import Callable, Dict

BENCHMARKS = ("raster", "soft", "scene")
MAX_SIZE = 8192
#: Exit status of ``--compare`` when a case is slower than ``--tolerance`` times its baseline.
SLOWER_EXIT = 4
DEFAULT_TOLERANCE = 1.25
COLUMNS = [("name", "name"), ("size", "size"), ("faces", "faces"), ("fwd_ms", "median ms fwd"),
           ("fwd_bwd_ms", "median ms fwd+bwd"), ("peak_mib", "peak MiB")]


def add_parser(sub) -> None:
    """Register ``bench`` on the ``lumigrad`` sub-command parsers ``sub``."""
    p = sub.add_parser(
        "bench",
        help="time lumigrad's rasterizer, soft rasterizer and scene renderer on this machine",
        description=(
            "Time the built-in benchmarks on the embedded Spot cow (5856 triangles), with no extra files: "
            "raster (rasterize + interpolate + texture + antialias), soft (soft_rasterize) and scene "
            "(lumigrad.render of a Scene with a point light). Each is timed forward (no autograd) and forward + "
            "backward of the mean pixel; the table shows the median of --repeats runs after --warmup untimed "
            "ones and the peak extra memory of one forward + backward (CUDA: max_memory_allocated growth; CPU: "
            "peak RSS growth, Linux only). With --compare BASELINE.json (an earlier --json file) it also prints "
            "each case's baseline and current times and their ratio, and exits with status 4 when a case is "
            "slower than --tolerance times its baseline."
        ),
    )
    p.add_argument("which", nargs="?", default="all", choices=BENCHMARKS + ("all",),
                   help="which benchmark to run (default: all)")
    p.add_argument("--size", type=int, nargs="+", default=[256], metavar="N",
                   help="image sizes in pixels, N x N (default: 256)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (default: 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs before the timed ones (default: 1)")
    p.add_argument("--device", default="auto", choices=("cpu", "cuda", "auto"),
                   help="where to run: cpu, cuda, or auto = cuda when available (default: auto)")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the rows as JSON to PATH")
    p.add_argument("--compare", type=Path, default=None, metavar="BASELINE",
                   help="compare with BASELINE (a file written by --json): print each case's baseline time, "
                        f"current time and ratio, and exit with status {SLOWER_EXIT} when a case is slower than "
                        "--tolerance times its baseline; cases on one side only are listed, not failed")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, metavar="RATIO",
                   help=f"slowest allowed current / baseline ratio for --compare (default: {DEFAULT_TOLERANCE})")
    p.add_argument("--current", type=Path, default=None, metavar="PATH",
                   help="with --compare: take the current rows from PATH (another --json file) instead of "
                        "running the benchmarks")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the benchmarks named by ``args``, print the table and optionally write ``--json``.

    Args:
        args: parsed arguments of the ``bench`` sub-command (see :func:`add_parser`).

    Returns:
        0, or :data:`SLOWER_EXIT` when ``--compare`` finds a case slower than ``--tolerance`` times its baseline.

    Raises:
        ValueError: a non-positive or too large ``--size``, ``--repeats < 1``, ``--device cuda`` without CUDA,
            a ``--json`` path whose folder does not exist, a ``--tolerance`` below 1, ``--current`` without
            ``--compare``, or a ``--compare`` / ``--current`` file that is not a ``--json`` document.
        FileNotFoundError: a missing ``--compare`` or ``--current`` file.
    """
    from ..app.benchmarking import format_table, read_bench_json

    baseline = _validate_compare(args)
    if args.current is not None:
        return _compare(baseline, read_bench_json(args.current, "--current")["rows"], args)
    sizes, device = _validate(args)
    names = BENCHMARKS if args.which == "all" else (args.which,)
    rows = []
    for name in names:
        for size in sizes:
            rows.append(_CASES[name](size, args.repeats, args.warmup, device))
    header = _environment(device)
    print(header["line"])
    print(format_table(rows, COLUMNS))
    if not all(row["peak_exact"] for row in rows):
        print("peak MiB: lower bounds (the process's peak RSS could not be reset on this system)")
    if args.json is not None:
        doc = {k: v for k, v in header.items() if k != "line"}
        doc.update(repeats=args.repeats, rows=rows)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0 if baseline is None else _compare(baseline, rows, args)


def _validate_compare(args: argparse.Namespace):
    """The ``--compare`` baseline document (None without it), after checking ``--tolerance`` / ``--current``."""
    from ..app.benchmarking import read_bench_json

    if not (args.tolerance >= 1 and args.tolerance < float("inf")):
        raise ValueError(f"--tolerance must be a finite ratio >= 1 (1.25 = 25% slower allowed); got {args.tolerance}")
    if args.compare is None:
        if args.current is not None:
            raise ValueError("--current needs --compare BASELINE (the file to compare it with)")
        return None
    return read_bench_json(args.compare, "--compare")


def _compare(baseline: dict, rows, args: argparse.Namespace) -> int:
    """Print the comparison of ``rows`` with ``baseline``; the exit status (:data:`SLOWER_EXIT` if slower)."""
    from ..app.benchmarking import compare_bench_rows, format_comparison

    result = compare_bench_rows(baseline["rows"], rows, args.tolerance)
    print(f"\ncompared with {args.compare}" + (f" ({baseline['device']})" if "device" in baseline else "") + ":")
    print(format_comparison(result, args.tolerance))
    return SLOWER_EXIT if result["slower"] else 0


def _validate(args: argparse.Namespace):
    """Return ``(sizes, torch.device)`` or raise ValueError naming the bad argument."""
    for size in args.size:
        if not 1 <= size <= MAX_SIZE:
            raise ValueError(f"--size must be between 1 and {MAX_SIZE} pixels; got {size}")
    if args.repeats < 1:
        raise ValueError(f"--repeats must be at least 1; got {args.repeats}")
    if args.warmup < 0:
        raise ValueError(f"--warmup must be at least 0; got {args.warmup}")
    from .._checks import resolve_device

    device = resolve_device(args.device, "--device")
    if args.json is not None and not args.json.parent.is_dir():
        raise ValueError(f"--json {args.json}: the folder {args.json.parent} does not exist")
    return list(args.size), device


def _environment(device: torch.device) -> Dict[str, str]:
    """The device / torch / lumigrad versions, as fields and as one printable line."""
    import torch

    import lumigrad

    from ..app.benchmarking import cpu_model

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU {cpu_model()}, {torch.get_num_threads()} threads"
    info = {"device": f"{device.type} ({name})", "torch": torch.__version__, "lumigrad": lumigrad.__version__}
    info["line"] = f"device: {info['device']} | torch {info['torch']} | lumigrad {info['lumigrad']}"
    return info


# ------------------------------------------------------------------------------------------------ cases
@functools.lru_cache(maxsize=2)
def _spot_mesh(device: torch.device):
    """The embedded Spot cow on ``device``, loaded once per device."""
    import lumigrad as lg

    return lg.data.load_spot().to(device)


def _spot(size: int, device: torch.device):
    """The embedded Spot cow on ``device`` and a camera framing it at ``size x size``."""
    import lumigrad as lg

    mesh = _spot_mesh(device)
    cam = lg.Camera.look_at(eye=[2.0, 0.5, 2.0], target=[0.0, 0.1, 0.0], fov_y=0.7, width=size,
                            height=size).to(device)
    return mesh, cam


def _measure(name: str, size: int, faces: int, fwd: Callable[[], object], fwd_bwd: Callable[[], object],
             repeats: int, warmup: int, device: torch.device) -> dict:
    """Time ``fwd`` (under no_grad) and ``fwd_bwd``, and the peak memory of one ``fwd_bwd``, as a table row."""
    import torch

    from ..app.benchmarking import median, peak_memory, time_call

    def no_grad_fwd():
        with torch.no_grad():
            return fwd()

    fwd_s = time_call(no_grad_fwd, repeats, warmup=warmup, sync=device)
    fwd_bwd_s = time_call(fwd_bwd, repeats, warmup=warmup, sync=device)
    mib, exact = peak_memory(fwd_bwd, device)
    row = {"name": name, "size": size, "faces": faces, "fwd_ms": median(fwd_s) * 1e3,
           "fwd_bwd_ms": median(fwd_bwd_s) * 1e3, "peak_mib": mib, "peak_exact": exact}
    return row


def _bench_raster(size: int, repeats: int, warmup: int, device: torch.device) -> dict:
    """rasterize -> interpolate (uv with derivatives) -> texture (mip-mapped) -> antialias."""
    from ..app.benchmarking import raster_pipeline

    mesh, cam = _spot(size, device)

    pipeline = raster_pipeline(mesh, cam)

    def fwd_bwd():
        verts = mesh.verts.detach().requires_grad_(True)
        texture = mesh.texture.detach().requires_grad_(True)
        pipeline(verts, texture).mean().backward()

    return _measure("raster", size, int(mesh.faces.shape[0]), lambda: pipeline(mesh.verts, mesh.texture), fwd_bwd,
                    repeats, warmup, device)


def _bench_soft(size: int, repeats: int, warmup: int, device: torch.device) -> dict:
    """soft_rasterize with per-vertex colours: silhouette and aggregated colour."""
    import lumigrad as lg

    mesh, cam = _spot(size, device)
    lo, hi = mesh.verts.min(0).values, mesh.verts.max(0).values
    colours = (mesh.verts - lo) / (hi - lo)

    def fwd_bwd():
        verts = mesh.verts.detach().requires_grad_(True)
        attrs = colours.detach().requires_grad_(True)
        out = lg.soft_rasterize(verts, mesh.faces, cam, attrs)
        (out.silhouette.mean() + out.attrs.mean()).backward()

    return _measure("soft", size, int(mesh.faces.shape[0]),
                    lambda: lg.soft_rasterize(mesh.verts, mesh.faces, cam, colours), fwd_bwd, repeats, warmup,
                    device)


def _bench_scene(size: int, repeats: int, warmup: int, device: torch.device) -> dict:
    """lumigrad.render of a Scene: Spot with its texture as base colour, lit by one point light."""
    import torch

    import lumigrad as lg

    mesh, cam = _spot(size, device)

    def make_scene(verts):
        scene = lg.Scene()
        scene.add_mesh("spot", lg.SceneMesh(verts, mesh.faces, lg.shading.Material(
            base_color_texture=mesh.texture), uv=mesh.uv, uv_faces=mesh.uv_faces))
        scene.add_light("key", lg.PointLight(torch.tensor([2.0, 2.0, 2.0], device=device), 8.0))
        return scene

    def fwd_bwd():
        verts = mesh.verts.detach().requires_grad_(True)
        lg.render(make_scene(verts), cam).rgb.mean().backward()

    return _measure("scene", size, int(mesh.faces.shape[0]), lambda: lg.render(make_scene(mesh.verts), cam),
                    fwd_bwd, repeats, warmup, device)


_CASES: Dict[str, Callable[[int, int, int, torch.device], dict]] = {
    "raster": _bench_raster, "soft": _bench_soft, "scene": _bench_scene}
