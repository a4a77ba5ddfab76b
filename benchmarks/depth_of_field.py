"""Depth of field: a thin-lens camera in lumigrad's path tracer and in Mitsuba 3, and its focus and aperture gradients.

The scene of ``tests/integrators/test_thin_lens_paths.py``'s ``OBJECTS``, written as a Mitsuba XML file and read by
both renderers (``lumigrad.io.read_mitsuba_xml`` and ``mi.load_file``): three diffuse objects at depths 2.5, 4 and
5.5 on a floor, under a point light and a constant sky, seen by a ``thinlens`` sensor focused at 4 with aperture
radius 0.3 (``--size`` wide, three quarters as high). Rows, each the median of ``--repeats`` after a warm-up, with
the peak memory of one call:

* lumigrad ``forward`` through the thin lens and through the pinhole camera of the same pose
  (``cam.replace(aperture_radius=None, focus_distance=None)``), alternated call by call: what the lens costs;
* Mitsuba 3 ``path`` forward of the file (``llvm_ad_rgb`` on the CPU; ``bash benchmarks/setup_mitsuba.sh``;
  ``--no-mitsuba`` skips it), at the same spp and depth, timed after ``dr.eval`` / ``dr.sync_thread``;
* lumigrad ``forward + gradient`` of ``sum(W * image)`` (``W``: fixed uniform random weights) w.r.t.
  ``focus_distance`` and ``aperture_radius`` together (both require grad; one call gives both), one row per
  parameter: the mean gradient over ``--grad-seeds`` seeds with its standard error, beside a central finite
  difference (step ``--fd-step`` of the value) of ``--fd-seeds`` renders at ``--fd-spp`` (the same seed on both
  sides) with its standard error. The boundary term is drawn through the pinhole cameras of
  ``lumigrad.integrators.path.LENS_EDGE_VIEWS`` aperture points (Latin-hypercube points and their antithetic
  mirrors), so the standard error shown is that design's, at the default settings.

The ``rel. RMSE`` column is each forward image's relative RMSE (``sqrt(mean((x - ref)^2)) / mean(ref)``) against
Mitsuba's render of the file at ``--ref-spp`` (another seed): at equal spp, lumigrad's thin lens and Mitsuba's rows
carry the same Monte Carlo noise when the two agree; the pinhole row shows how far the unblurred image is.

Prints a markdown table; ``main(argv)`` returns its rows (the smoke test's). Timings are wall-clock on the CPU and
move with whatever else the machine runs.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

import lumigrad as lg
from lumigrad.app.benchmarking import median, peak_memory, time_call
from lumigrad.integrators.path import LENS_EDGE_VIEWS
from lumigrad.io import read_mitsuba_xml

sys.path.insert(0, str(Path(__file__).resolve().parent))

#: ``tests/integrators/test_thin_lens_paths.py``'s ``OBJECTS`` with the film size and the path depth left open.
OBJECTS = """<scene version="3.0.0">
 <integrator type="path"><integer name="max_depth" value="{depth}"/></integrator>
 <sensor type="thinlens">
  <float name="fov" value="40"/><float name="aperture_radius" value="0.3"/><float name="focus_distance" value="4"/>
  <transform name="to_world"><lookat origin="0.5, 1, -4" target="0, 0, 0" up="0, 1, 0"/></transform>
  <film type="hdrfilm"><integer name="width" value="{width}"/><integer name="height" value="{height}"/>
   <rfilter type="box"/></film>
 </sensor>
 <emitter type="constant"><rgb name="radiance" value="0.8"/></emitter>
 <emitter type="point"><point name="position" x="2" y="4" z="-2"/><rgb name="intensity" value="20"/></emitter>
 <shape type="cube"><transform name="to_world"><scale value="0.5"/><translate x="-0.8" z="1.5"/></transform>
  <bsdf type="diffuse"><rgb name="reflectance" value="0.8, 0.2, 0.2"/></bsdf></shape>
 <shape type="sphere"><point name="center" x="0.7" y="0" z="-1.5"/><float name="radius" value="0.4"/>
  <bsdf type="diffuse"><rgb name="reflectance" value="0.2, 0.7, 0.3"/></bsdf></shape>
 <shape type="cube"><transform name="to_world"><scale value="0.4"/></transform>
  <bsdf type="diffuse"><rgb name="reflectance" value="0.3, 0.3, 0.8"/></bsdf></shape>
 <shape type="rectangle"><transform name="to_world"><scale value="5"/><rotate x="1" angle="-90"/><translate y="-0.6"/>
  </transform><bsdf type="diffuse"><rgb name="reflectance" value="0.5"/></bsdf></shape>
</scene>"""

#: The thin lens's parameters the gradient rows differentiate, in the rows' order.
LENS_PARAMETERS = ("focus_distance", "aperture_radius")


def write_scene(directory: Path, width: int, height: int, depth: int) -> Path:
    """The scene file ``directory/depth_of_field.xml`` at ``width x height`` pixels and path depth ``depth``."""
    path = Path(directory) / "depth_of_field.xml"
    path.write_text(OBJECTS.format(width=width, height=height, depth=depth))
    return path


def rel_rmse(image: np.ndarray, ref: np.ndarray) -> float:
    """Relative RMSE ``sqrt(mean((image - ref)^2)) / mean(ref)`` of two ``[H, W, 3]`` images."""
    return float(np.sqrt(np.mean((image - ref) ** 2)) / np.mean(ref))


def mean_and_error(values) -> tuple:
    """The mean of ``values`` and its standard error (``std(ddof=1) / sqrt(n)``; NaN for one value)."""
    values = np.asarray(values, dtype=np.float64)
    error = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else float("nan")
    return float(values.mean()), error


def forward_rows(scene: lg.Scene, cams: dict, settings: dict, repeats: int) -> list:
    """One row per camera of ``cams`` (``{label: camera}``): ``lg.render(scene, cam, **settings)`` without a graph,
    after one warm-up call each, the cameras alternated call by call so that machine load falls on all of them."""
    calls = {}
    for label, cam in cams.items():
        def forward(cam=cam):
            with torch.no_grad():
                return lg.render(scene, cam, **settings).rgb
        calls[label] = forward
    images = {label: fn() for label, fn in calls.items()}
    times = {label: [] for label in calls}
    for _ in range(repeats):
        for label, fn in calls.items():
            times[label] += time_call(fn, 1, warmup=0)
    return [dict(renderer="lumigrad", what=f"forward, {label}", seconds=median(times[label]),
                 mib=peak_memory(fn)[0], mean=float(images[label].mean()), image=images[label].double().numpy())
            for label, fn in calls.items()]


def weighted_sum(scene: lg.Scene, cam: lg.Camera, weights: torch.Tensor, settings: dict, seed: int) -> torch.Tensor:
    """The loss ``sum(weights * image)`` of one render with ``seed``."""
    return (lg.render(scene, cam, **settings, seed=seed).rgb * weights).sum()


def lens_gradient(scene: lg.Scene, cam: lg.Camera, weights: torch.Tensor, settings: dict, seed: int) -> dict:
    """``{name: d loss / d name}`` for the parameters of :data:`LENS_PARAMETERS`, from one forward + backward."""
    params = {name: getattr(cam, name).detach().clone().requires_grad_(True) for name in LENS_PARAMETERS}
    weighted_sum(scene, cam.replace(**params), weights, settings, seed).backward()
    return {name: float(p.grad) for name, p in params.items()}


def finite_difference(scene: lg.Scene, cam: lg.Camera, weights: torch.Tensor, settings: dict, name: str,
                      step: float, seed: int) -> float:
    """Central difference ``(loss(x + step) - loss(x - step)) / (2 step)`` of parameter ``name``, both renders with
    ``seed`` (common random numbers: the aperture and path samples are the same on both sides)."""
    value = getattr(cam, name).detach()
    with torch.no_grad():
        plus, minus = (float(weighted_sum(scene, cam.replace(**{name: value + s}), weights, settings, seed))
                       for s in (step, -step))
    return (plus - minus) / (2 * step)


def gradient_rows(scene: lg.Scene, cam: lg.Camera, args) -> list:
    """The gradient rows: one timed ``forward + gradient`` call (both parameters), its mean and standard error over
    ``args.grad_seeds`` seeds and the finite-difference reference, per parameter of :data:`LENS_PARAMETERS`."""
    weights = torch.rand(cam.height, cam.width, 3, generator=torch.Generator().manual_seed(0))
    settings = dict(integrator="path", spp=args.spp, max_depth=args.depth)
    grads = [lens_gradient(scene, cam, weights, settings, seed) for seed in range(args.grad_seeds)]  # 1st: warm-up
    seconds = median(time_call(lambda: lens_gradient(scene, cam, weights, settings, 1000), args.repeats, warmup=0))
    mib = peak_memory(lambda: lens_gradient(scene, cam, weights, settings, 1001))[0]
    fd_settings = dict(settings, spp=args.fd_spp)
    rows = []
    for name in LENS_PARAMETERS:
        step = args.fd_step * float(getattr(cam, name))
        grad, grad_err = mean_and_error([g[name] for g in grads])
        fd, fd_err = mean_and_error([finite_difference(scene, cam, weights, fd_settings, name, step, 100 + seed)
                                     for seed in range(args.fd_seeds)])
        rows.append(dict(renderer="lumigrad", what=f"forward + gradient, d loss / d {name}", seconds=seconds,
                         mib=mib, grad=grad, grad_err=grad_err, fd=fd, fd_err=fd_err, fd_step=step))
    return rows


def mitsuba_rows(path: Path, spp: int, ref_spp: int, repeats: int):
    """Mitsuba's timed forward row of the file at ``spp`` and its reference image at ``ref_spp`` (seed 1), or
    ``(None, None, why)`` when Mitsuba is unavailable."""
    import _mitsuba_peer as peer

    ok, why = peer.available()
    if not ok:
        return None, None, why
    peer.use_variant()
    mi, _ = peer._load()
    mscene = mi.load_file(str(path))
    image = peer.render_numpy(mscene, spp)[..., :3]  # warm-up (JIT)
    seconds = median(peer._timed(lambda: peer._sync(mi.render(mscene, spp=spp, seed=0)), repeats))
    _, grow, _ = peer.peak_rss_growth(lambda: peer._sync(mi.render(mscene, spp=spp, seed=0)))
    ref = peer.render_numpy(mscene, ref_spp, seed=1)[..., :3]
    row = dict(renderer=f"Mitsuba {mi.__version__} (llvm_ad_rgb)", what="forward, thin lens (`path`, `thinlens`)",
               seconds=seconds, mib=grow / 2**20, mean=float(image.mean()), image=image)
    return row, ref, why


def _cell(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _pm(value, error, fmt: str = ".4g") -> str:
    return "-" if value is None else f"{value:{fmt}} ± {error:.2g}"


def print_table(rows: list, header: str) -> None:
    print(header)
    print("| renderer | what | median s | peak MiB | mean pixel | rel. RMSE vs Mitsuba | gradient ± s.e. | "
          "central FD ± s.e. |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['renderer']} | {r['what']} | {r['seconds']:.3f} | {r['mib']:.0f} | {_cell(r.get('mean'), '.5f')} "
              f"| {_cell(r.get('rel_rmse'), '.4f')} | {_pm(r.get('grad'), r.get('grad_err'))} "
              f"| {_pm(r.get('fd'), r.get('fd_err'))} |")


def main(argv=None) -> list:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=128, help="image width in pixels (height: three quarters of it)")
    p.add_argument("--spp", type=int, default=16)
    p.add_argument("--depth", type=int, default=4, help="maximum path depth (both renderers)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--grad-seeds", type=int, default=4, help="gradient seeds behind the mean and standard error")
    p.add_argument("--fd-spp", type=int, default=256, help="spp of the finite-difference renders")
    p.add_argument("--fd-seeds", type=int, default=3, help="seeds of the finite-difference reference")
    p.add_argument("--fd-step", type=float, default=0.05, help="finite-difference step, relative to the value")
    p.add_argument("--ref-spp", type=int, default=1024, help="spp of Mitsuba's reference image")
    p.add_argument("--no-mitsuba", action="store_true", help="lumigrad's rows only")
    args = p.parse_args(argv)
    width, height = args.size, max(1, args.size * 3 // 4)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_scene(Path(tmp), width, height, args.depth)
        scene = read_mitsuba_xml(path)
        cam = next(iter(scene.cameras.values()))
        cams = {"thin lens": cam, "pinhole": cam.replace(aperture_radius=None, focus_distance=None)}
        rows = forward_rows(scene, cams, dict(integrator="path", spp=args.spp, max_depth=args.depth), args.repeats)
        why, ref = "skipped (--no-mitsuba)", None
        if not args.no_mitsuba:
            row, ref, why = mitsuba_rows(path, args.spp, args.ref_spp, args.repeats)
            if row is not None:
                rows.append(row)
    for r in rows:
        r["rel_rmse"] = rel_rmse(r.pop("image"), ref) if ref is not None else None
    rows += gradient_rows(scene, cam, args)
    header = (f"lumigrad {lg.__version__} | torch {torch.__version__} | {torch.get_num_threads()} threads | "
              f"{width}x{height}, {args.spp} spp, depth {args.depth}, aperture {float(cam.aperture_radius):g}, focus "
              f"{float(cam.focus_distance):g} | gradients: {args.grad_seeds} seeds, {LENS_EDGE_VIEWS} lens edge views; "
              f"FD: {args.fd_seeds} seeds x {args.fd_spp} spp, step {args.fd_step:g} x value | reference: Mitsuba "
              f"{args.ref_spp} spp | Mitsuba: {why}")
    print_table(rows, header)
    return rows


if __name__ == "__main__":
    main()
