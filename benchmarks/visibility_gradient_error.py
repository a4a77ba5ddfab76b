"""Visibility gradient at equal error: d mean pixel / d lamp height of the Cornell box, lumigrad beside Mitsuba 3.

The scene and camera are ``benchmarks/pathtrace.py``'s (``cornell_box``, ``camera``; Mitsuba gets the same scene
through ``benchmarks/_mitsuba_peer.py``'s ``scene_dict``). Moving the lamp moves its silhouette in the view and
the edges of its light: the gradient is a visibility gradient. Two modes:

* ``--reference lumigrad mitsuba``: central finite differences ``(I(y + h) - I(y - h)) / 2h`` of the mean pixel
  of high-spp forward renders (lumigrad's ``path``, Mitsuba's ``path``), the same seed on both sides (common
  random numbers), one difference per seed; prints their mean and standard error.
* ``--configs``: for each configuration, ``--seeds`` gradient runs (seeds 0, 1, ...): the median time of a call
  (wall and process CPU; the first call of a configuration is left out of the medians, it compiles), the mean,
  standard deviation and RMSE of the values against ``--reference-value`` and the Monte Carlo efficiency
  ``1 / (CPU s x RMSE^2)`` (higher is better). A configuration is ``renderer:key=value,...``:
  ``lumigrad:depth=8,spp_grad=4,edge_samples=4096,shadow_edge_samples=0`` (forward ``spp`` 16 unless given;
  ``PathIntegrator`` settings) or ``mitsuba:depth=8,integrator=prb_projective,guiding=none,spp=16``
  (``direct_projective`` for depth 2; ``sppi=0`` leaves out its indirect-visibility term).

``--jsonl FILE`` appends every value (one JSON object a line) so runs in several processes can be tabled
together: ``--table FILE`` prints the table of such a file without running anything.

``--profile`` splits lumigrad's forward + gradient of each lumigrad configuration (its second call, after a
warm-up) by function, in process CPU seconds: the forward render, and in the backward pass the primal radiance
of the replayed paths, the replay (its area-parameterised next-event term among it), the primary edges and the
shadow edges, each with its parts (inclusive times, nested as the calls are).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from pathtrace import camera, cornell_box  # noqa: E402

LAMP_Y = 0.99
ALBEDO = (0.7, 0.7, 0.7)
_LUMIGRAD_KEYS = {"depth", "spp", "spp_grad", "edge_samples", "shadow_edge_samples"}
_MITSUBA_KEYS = {"depth", "spp", "integrator", "guiding", "sppi"}


def parse_config(text: str) -> dict:
    """``"renderer:key=value,..."`` as a dict with ``renderer`` and typed values (ints where they parse)."""
    renderer, _, rest = text.partition(":")
    if renderer not in ("lumigrad", "mitsuba"):
        raise ValueError(f"a configuration starts with 'lumigrad:' or 'mitsuba:'; got {text!r}")
    out = {"renderer": renderer}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        allowed = _LUMIGRAD_KEYS if renderer == "lumigrad" else _MITSUBA_KEYS
        if key not in allowed:
            raise ValueError(f"unknown key {key!r} in configuration {text!r}; {renderer} takes {sorted(allowed)}")
        out[key] = int(value) if value.lstrip("-").isdigit() else value
    out.setdefault("depth", 8)
    out.setdefault("spp", 16)
    if renderer == "mitsuba":
        out.setdefault("integrator", "prb_projective" if out["depth"] > 2 else "direct_projective")
        out.setdefault("guiding", "none")
    return out


def config_name(config: dict) -> str:
    return config["renderer"] + ":" + ",".join(f"{k}={v}" for k, v in config.items() if k != "renderer")


def _lumigrad_settings(config: dict) -> dict:
    settings = dict(integrator="path", max_depth=config["depth"], rr_depth=config["depth"])
    settings.update({k: config[k] for k in ("spp_grad", "edge_samples", "shadow_edge_samples") if k in config})
    return settings


def lumigrad_gradient(size: int, config: dict):
    """A callable ``seed -> d mean / d lamp height`` for lumigrad's configuration ``config``."""
    import lumigrad as lg

    cam = camera(size)
    lamp_y = torch.tensor(LAMP_Y, requires_grad=True)
    scene = cornell_box(torch.tensor(ALBEDO), lamp_y=lamp_y)
    settings = _lumigrad_settings(config)

    def run(seed: int) -> float:
        lamp_y.grad = None
        lg.render(scene, cam, spp=config["spp"], seed=seed, **settings).rgb.mean().backward()
        return float(lamp_y.grad)
    return run


def lumigrad_mean(size: int, depth: int, spp: int):
    """A callable ``(lamp height, seed) -> mean pixel`` of lumigrad's forward (float64 sum)."""
    import lumigrad as lg

    cam = camera(size)

    def run(y: float, seed: int) -> float:
        scene = cornell_box(torch.tensor(ALBEDO), lamp_y=torch.tensor(y))
        with torch.no_grad():
            rgb = lg.render(scene, cam, integrator="path", spp=spp, seed=seed, max_depth=depth, rr_depth=depth).rgb
        return float(rgb.double().mean())
    return run


def _mitsuba():
    import _mitsuba_peer as peer

    ok, why = peer.available()
    if not ok:
        raise RuntimeError(f"Mitsuba unavailable: {why}")
    peer.use_variant()
    mi, dr = peer._load()
    return peer, mi, dr


def _mitsuba_scene(size: int, integrator: dict, sampler: dict | None = None):
    peer, mi, dr = _mitsuba()
    d = peer.scene_dict(cornell_box(torch.tensor(ALBEDO)), camera(size), integrator=integrator)
    if sampler is not None:
        d["sensor"]["sampler"] = sampler
    d["sensor"]["film"]["sample_border"] = True  # the lamp's silhouette may leave the film
    scene = mi.load_dict(d)
    params = mi.traverse(scene)
    key = "lamp.vertex_positions"
    return peer, mi, dr, scene, params, key, dr.unravel(mi.Point3f, params[key])


def mitsuba_gradient(size: int, config: dict):
    """A callable ``seed -> d mean / d lamp height`` for Mitsuba's configuration ``config``."""
    integrator = {"type": config["integrator"], "max_depth": config["depth"], "rr_depth": config["depth"],
                  "guiding": config["guiding"]}
    if "sppi" in config:  # samples of the indirect-visibility term (0: primary visibility and the interior only)
        integrator["sppi"] = config["sppi"]
    if config["integrator"] not in ("prb_projective", "direct_projective"):
        raise ValueError(f"integrator must be prb_projective or direct_projective; got {config['integrator']!r}")
    peer, mi, dr, scene, params, key, lamp = _mitsuba_scene(size, integrator)

    def run(seed: int) -> float:
        t = mi.Float(0.0)
        dr.enable_grad(t)
        params[key] = dr.ravel(lamp + mi.Vector3f(0.0, t, 0.0))
        params.update()
        dr.backward(dr.mean(mi.render(scene, params, spp=config["spp"], seed=seed), axis=None))
        grad = dr.grad(t)
        peer._sync(grad)
        return float(grad[0])
    return run


def mitsuba_mean(size: int, depth: int, spp: int, sampler: str = "independent"):
    """A callable ``(lamp height, seed) -> mean pixel`` of Mitsuba's ``path`` forward with its ``sampler``
    (``"multijitter"``: stratified camera and light samples, which lower the differences' variance)."""
    peer, mi, dr, scene, params, key, lamp = _mitsuba_scene(
        size, {"type": "path", "max_depth": depth, "rr_depth": depth}, {"type": sampler, "sample_count": spp})

    def run(y: float, seed: int) -> float:
        params[key] = dr.ravel(lamp + mi.Vector3f(0.0, y - LAMP_Y, 0.0))
        params.update()
        return float(peer.render_numpy(scene, spp, seed).mean())
    return run


def finite_differences(mean_fn, h: float, seeds) -> list:
    """One central difference per seed, the same seed on both sides."""
    return [(mean_fn(LAMP_Y + h, s) - mean_fn(LAMP_Y - h, s)) / (2 * h) for s in seeds]


#: ``(module, owner or None, attribute, label)`` of the functions ``--profile`` times.
_PROFILED = (
    ("lumigrad.integrators.path", "_PathReplay", "forward", "forward render"),
    ("lumigrad.integrators.path", "_Run", "adjoint", "backward"),
    ("lumigrad.integrators.path", None, "sample_paths_fused", "fused primal passes"),
    ("lumigrad.integrators.path", None, "sample_paths", "replay (sample_paths)"),
    ("lumigrad.raytrace.transport", None, "area_next_event", "area-parameterised next event (differentiated)"),
    ("lumigrad.raytrace.transport", None, "surface_at", "surface_at"),
    ("lumigrad.raytrace.transport", None, "_next_event", "next event, other lights"),
    ("lumigrad.kernels.replay_kernels", "ReplayKernels", "area_next_event", "next event values (Warp twin)"),
    ("lumigrad.kernels.replay_kernels", "ReplayKernels", "bsdf_sample", "BSDF samples (Warp twin)"),
    ("lumigrad.raytrace.transport", "PathAdjoint", "backprop", "autograd (PathAdjoint.backprop)"),
    ("lumigrad.integrators.path", "_Run", "_edges", "primary edges"),
    ("lumigrad.integrators.path", None, "sample_primary_edges", "sample_primary_edges"),
    ("lumigrad.integrators.path", "_Run", "_shadow_edges", "shadow edges"),
    ("lumigrad.integrators.path", None, "sample_shadow_edge_sources", "sample_shadow_edge_sources"),
    ("lumigrad.integrators.path", None, "shadow_edges_seen_by", "shadow_edges_seen_by"),
    ("lumigrad.integrators.path", None, "shadow_edge_jumps", "shadow_edge_jumps"),
    ("lumigrad.integrators.path", None, "connected_shadow_edges", "shadow edges beyond the first hit"),
)


class Profile:
    """Inclusive process CPU seconds of the :data:`_PROFILED` functions, keyed by their call nesting
    (``"backward/replay (sample_paths)"``); the functions are wrapped while the context is open."""

    def __init__(self):
        self.seconds, self.calls, self.order, self._stack, self._undo = {}, {}, {}, [], []

    def _wrap(self, fn, label):
        def timed(*args, **kwargs):
            self._stack.append(label)
            key = "/".join(self._stack)
            self.order.setdefault(key, len(self.order))  # first entry: parents before their parts
            t0 = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[key] = self.seconds.get(key, 0.0) + time.process_time() - t0
                self.calls[key] = self.calls.get(key, 0) + 1
                self._stack.pop()
        return timed

    def __enter__(self):
        import importlib

        for module, owner, name, label in _PROFILED:
            target = importlib.import_module(module)
            target = getattr(target, owner) if owner else target
            fn = target.__dict__[name]
            wrapped = self._wrap(fn.__func__ if isinstance(fn, staticmethod) else fn, label)
            setattr(target, name, staticmethod(wrapped) if isinstance(fn, staticmethod) else wrapped)
            self._undo.append((target, name, fn))
        return self

    def __exit__(self, *exc):
        for target, name, fn in reversed(self._undo):
            setattr(target, name, fn)
        self._undo.clear()

    def print(self, total: float) -> None:
        print(f"| part (nested) | calls | CPU s | of {total:.3f} s |")
        print("|---|---|---|---|")
        for key in sorted(self.seconds, key=self.order.get):
            depth = key.count("/")
            print(f"| {'. ' * depth}{key.rsplit('/', 1)[-1]} | {self.calls[key]} | {self.seconds[key]:.3f} | "
                  f"{100 * self.seconds[key] / total:.0f} % |")


def profile(size: int, config: dict, seed: int = 0) -> Profile:
    """The :class:`Profile` of one call (after a warm-up) of lumigrad's configuration ``config``."""
    fn = lumigrad_gradient(size, config)
    fn(seed)
    with Profile() as prof:
        t0 = time.process_time()
        fn(seed)
        total = time.process_time() - t0
    print(f"profile of {config_name(config)} at {size}^2 (one call after a warm-up):")
    prof.print(total)
    prof.total = total
    return prof


def _timed(fn, seed: int):
    w0, c0 = time.perf_counter(), time.process_time()
    value = fn(seed)
    return value, time.perf_counter() - w0, time.process_time() - c0


def summarise(records: list, reference: float | None) -> list:
    """One row per configuration (in first-seen order) of ``records`` (dicts with config, seed, value, wall,
    cpu, first)."""
    rows = []
    for name in dict.fromkeys(r["config"] for r in records):
        rs = [r for r in records if r["config"] == name]
        values = [r["value"] for r in rs]
        timed = [r for r in rs if not r["first"]] or rs
        row = {"config": name, "n": len(values), "wall": statistics.median(r["wall"] for r in timed),
               "cpu": statistics.median(r["cpu"] for r in timed), "mean": statistics.fmean(values),
               "std": statistics.stdev(values) if len(values) > 1 else float("nan")}
        if reference is not None:
            row["rmse"] = math.sqrt(statistics.fmean((v - reference) ** 2 for v in values))
            row["efficiency"] = 1.0 / (row["cpu"] * row["rmse"] ** 2) if row["rmse"] > 0 else float("inf")
        rows.append(row)
    return rows


def print_table(rows: list, reference: float | None) -> None:
    print(f"reference d mean / d lamp height: {reference}")
    print("| configuration | runs | median wall s | median CPU s | mean | std | RMSE | 1 / (CPU s x RMSE^2) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        rmse = f"{r['rmse']:.4f}" if "rmse" in r else "-"
        eff = f"{r['efficiency']:.3g}" if "efficiency" in r else "-"
        print(f"| {r['config']} | {r['n']} | {r['wall']:.3f} | {r['cpu']:.3f} | {r['mean']:.4f} | {r['std']:.4f} | "
              f"{rmse} | {eff} |")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--reference", nargs="*", default=[], choices=["lumigrad", "mitsuba"],
                   help="finite-difference references of these renderers' forward")
    p.add_argument("--ref-spp", type=int, default=256)
    p.add_argument("--ref-depth", type=int, default=8)
    p.add_argument("--ref-seeds", type=int, default=4)
    p.add_argument("--ref-minus-depth", type=int, default=None,
                   help="difference the mean of --ref-depth minus the mean of this depth (the same seeds: the light "
                        "of the bounces in between, whose noise the silhouette's crossings do not reach)")
    p.add_argument("--ref-sampler", default="independent", choices=["independent", "multijitter", "ldsampler"],
                   help="Mitsuba's sampler for its reference (lumigrad's camera samples are independent)")
    p.add_argument("--h", type=float, default=0.004,
                   help="finite-difference step of the lamp height (the ceiling is 0.01 above the lamp)")
    p.add_argument("--configs", nargs="*", default=[], help="gradient configurations (see the module)")
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--reference-value", type=float, default=None, help="the reference for the RMSE column")
    p.add_argument("--jsonl", default=None, help="append every value to this file (JSON lines)")
    p.add_argument("--table", default=None, help="print the table of this JSON-lines file and exit")
    p.add_argument("--profile", action="store_true", help="profile each lumigrad configuration instead")
    args = p.parse_args(argv)
    if args.table:
        with open(args.table) as f:
            records = [json.loads(line) for line in f if line.strip()]
        rows = summarise([r for r in records if r.get("kind") == "gradient"], args.reference_value)
        print_table(rows, args.reference_value)
        return {"rows": rows}

    if args.profile:
        configs = [parse_config(t) for t in args.configs]
        return {"profiles": [profile(args.size, c) for c in configs if c["renderer"] == "lumigrad"]}
    out = {"references": {}, "rows": []}
    records = []

    def keep(record):
        records.append(record)
        if args.jsonl:
            with open(args.jsonl, "a") as f:
                f.write(json.dumps(record) + "\n")

    seeds = range(args.first_seed, args.first_seed + args.seeds)
    for who in args.reference:
        def renderer(depth):
            return (lumigrad_mean(args.size, depth, args.ref_spp) if who == "lumigrad" else
                    mitsuba_mean(args.size, depth, args.ref_spp, args.ref_sampler))
        mean_fn = renderer(args.ref_depth)
        if args.ref_minus_depth is not None:
            deep, shallow = mean_fn, renderer(args.ref_minus_depth)
            mean_fn = lambda y, s: deep(y, s) - shallow(y, s)  # noqa: E731
        ref_seeds = range(args.first_seed, args.first_seed + args.ref_seeds)
        t0 = time.perf_counter()
        diffs = finite_differences(mean_fn, args.h, ref_seeds)
        for s, d in zip(ref_seeds, diffs):
            keep({"kind": "reference", "renderer": who, "size": args.size, "spp": args.ref_spp,
                  "sampler": args.ref_sampler if who == "mitsuba" else "independent",
                  "depth": args.ref_depth, "minus_depth": args.ref_minus_depth, "h": args.h, "seed": s, "value": d})
        se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else float("nan")
        out["references"][who] = (statistics.fmean(diffs), se)
        minus = "" if args.ref_minus_depth is None else f" minus depth {args.ref_minus_depth}"
        print(f"reference {who}: {args.size}^2, {args.ref_spp} spp, depth {args.ref_depth}{minus}, h {args.h}, "
              f"{args.ref_sampler if who == 'mitsuba' else 'independent'} samples, "
              f"{len(diffs)} seeds: {statistics.fmean(diffs):.5f} +- {se:.5f} (standard error; values "
              f"{', '.join(f'{d:.4f}' for d in diffs)}; {time.perf_counter() - t0:.0f} s)", flush=True)
    for text in args.configs:
        config = parse_config(text)
        fn = (lumigrad_gradient if config["renderer"] == "lumigrad" else mitsuba_gradient)(args.size, config)
        for i, s in enumerate(seeds):
            value, wall, cpu = _timed(fn, s)
            keep({"kind": "gradient", "config": config_name(config), "size": args.size, "seed": s, "value": value,
                  "wall": wall, "cpu": cpu, "first": i == 0})
            print(f"  {config_name(config)} seed {s}: {value:.5f} ({wall:.2f} s wall, {cpu:.2f} s CPU)", flush=True)
    if args.configs:
        out["rows"] = summarise([r for r in records if r["kind"] == "gradient"], args.reference_value)
        print_table(out["rows"], args.reference_value)
    return out


if __name__ == "__main__":
    main()
