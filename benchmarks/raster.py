"""Benchmark of lumigrad's raster pipeline ``rasterize -> interpolate -> texture -> antialias``.

For each scene and resolution it measures (median of ``--repeats`` runs after one warm-up):

* ``floor``: allocating and filling the output buffers the pipeline must write (face ids ``int32 [H, W]``,
  depth ``[H, W]``, barycentrics ``[H, W, 3]``, uv ``[H, W, 2]``, colour ``[H, W, 3]``): a lower bound;
* ``raster``: :func:`lumigrad.rasterize` alone (the G-buffer: face ids, depth, barycentrics);
* ``fwd``: the whole pipeline under ``torch.no_grad`` (barycentric derivatives, uv derivatives, trilinear
  texture lookup in a mip pyramid built once outside the timing, antialias);
* ``fwd+bwd``: the whole pipeline plus ``backward`` of the mean antialiased pixel, with the vertex positions
  and the texture requiring grad (the mip pyramid is rebuilt from the texture inside the timing, since the
  texture is a parameter);
* the peak memory of ``fwd`` and ``fwd+bwd``: growth of the peak resident set size on CPU, or of
  ``torch.cuda.max_memory_allocated`` on CUDA.

Side by side, Mitsuba 3 (``benchmarks/_mitsuba_peer.py``, CPU ``llvm_ad_rgb`` variant, also on ``--device
cuda`` runs) renders the same mesh through the same camera: a G-buffer with its ``aov`` integrator at 1 spp
(compare with ``raster`` / ``fwd``) and the gradient of the mean pixel w.r.t. the vertex positions with
``direct_projective`` (``guiding='none'``, 1 spp; compare with ``fwd+bwd``). ``agree`` is the fraction of
pixels where Mitsuba's triangle index equals lumigrad's face id (background included): a check that both see
the same scene through the same camera.

Scenes: ``spot`` (the Spot cow, 5856 triangles, its 1024^2 texture) and ``sphere`` (a bumpy UV sphere with
about 1M triangles and a procedural 1024^2 texture). Both fill about 90% of the image's width or height.

Usage::

    .venv/bin/python benchmarks/raster.py                         # everything (slow on CPU)
    .venv/bin/python benchmarks/raster.py --scenes spot --sizes 512 --repeats 3
    .venv/bin/python benchmarks/raster.py --quick --no-peer       # smoke run (small sphere, 64x64)
    .venv/bin/python benchmarks/raster.py --device cuda --out bench.md
    .venv/bin/python benchmarks/raster.py --scenes spot --sizes 512 --no-peer --twins  # before fusion
    OMP_NUM_THREADS=1 LUMIGRAD_NUM_THREADS=1 .venv/bin/python benchmarks/raster.py --scenes spot --cpu-time
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import statistics
import sys
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _mitsuba_peer as peer  # noqa: E402  (sets DRJIT_LIBLLVM_PATH; imports only numpy until used)

import lumigrad as lg  # noqa: E402
from lumigrad.app.benchmarking import cpu_model, peak_memory, time_call  # noqa: E402
from lumigrad.data import load_spot  # noqa: E402

SCENES = ("spot", "sphere")
SIZES = (256, 512, 1024)
SPHERE_GRID = (1024, 512)  # (slices, stacks): 2 * 1024 * 511 = 1,046,528 triangles
QUICK_SPHERE_GRID = (96, 48)  # 9,024 triangles
QUICK_SIZE = 64
FILL = 0.9  # fraction of the image the object's bounding extent fills


# ------------------------------------------------------------------------------------------------ scenes
@dataclass
class Scene:
    """A textured triangle mesh to benchmark.

    Attributes:
        name: label in the table.
        verts: ``[V, 3]`` float32 positions.
        faces: ``[F, 3]`` int64 vertex indices (counter-clockwise outside).
        uv: ``[T, 2]`` texture coordinates.
        uv_faces: ``[F, 3]`` indices into ``uv``.
        texture: ``[Ht, Wt, 3]`` float32 texture.
    """

    name: str
    verts: torch.Tensor
    faces: torch.Tensor
    uv: torch.Tensor
    uv_faces: torch.Tensor
    texture: torch.Tensor

    def to(self, device: torch.device) -> "Scene":
        """Returns a copy with every tensor on ``device``."""
        return Scene(self.name, *(t.to(device) for t in (self.verts, self.faces, self.uv, self.uv_faces,
                                                         self.texture)))


def spot_scene() -> Scene:
    """The Spot cow as embedded in lumigrad (5856 triangles, 1024^2 texture)."""
    m = load_spot()
    return Scene("spot", m.verts.float(), m.faces.long(), m.uv.float(), m.uv_faces.long(), m.texture.float())


def bumpy_sphere(slices: int, stacks: int, tex_size: int = 1024) -> Scene:
    """A closed UV sphere with smooth bumps, ``2 * slices * (stacks - 1)`` triangles.

    Positions are welded (one vertex per pole, the seam shared), so the mesh is a closed manifold and only
    true silhouettes are antialiased; texture coordinates have their own faces (the seam column and the
    pole corners are duplicated in ``uv``), as in an OBJ file.

    Args:
        slices: vertices around each ring (longitude steps).
        stacks: latitude steps from pole to pole (``stacks - 1`` rings).
        tex_size: side of the procedural square texture.
    """
    i = torch.arange(1, stacks, dtype=torch.float64)[:, None]  # ring index
    j = torch.arange(slices, dtype=torch.float64)[None, :]
    theta = math.pi * i / stacks  # polar angle
    phi = 2 * math.pi * j / slices
    r = 1.0 + 0.04 * torch.sin(7 * theta) * torch.cos(9 * phi) + 0.01 * torch.sin(31 * theta + 23 * phi)
    ring_pts = torch.stack([r * torch.sin(theta) * torch.cos(phi), r * torch.cos(theta),
                            r * torch.sin(theta) * torch.sin(phi)], -1).reshape(-1, 3)
    verts = torch.cat([torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64), ring_pts,
                       torch.tensor([[0.0, -1.0, 0.0]], dtype=torch.float64)]).float()
    top, bottom = 0, 1 + (stacks - 1) * slices

    def ring(a, b):  # vertex index of ring a (1-based), column b (wraps)
        return 1 + (a - 1) * slices + b % slices

    jj = torch.arange(slices)
    fan_top = torch.stack([torch.full_like(jj, top), ring(1, jj + 1), ring(1, jj)], -1)
    fan_bottom = torch.stack([torch.full_like(jj, bottom), ring(stacks - 1, jj), ring(stacks - 1, jj + 1)], -1)
    a = torch.arange(1, stacks - 1)[:, None]
    b = jj[None, :]
    q0, q1, q2, q3 = ring(a, b), ring(a, b + 1), ring(a + 1, b), ring(a + 1, b + 1)
    quads = torch.stack([torch.stack([q0, q1, q2], -1), torch.stack([q1, q3, q2], -1)], -2).reshape(-1, 3)
    faces = torch.cat([fan_top, quads, fan_bottom])

    # uv: (slices + 1) columns on every ring (seam duplicated) plus one pole corner per column.
    cols = slices + 1

    def tc(a, b):  # uv index of ring a (1-based), column b (no wrap: b in [0, slices])
        return slices + (a - 1) * cols + b

    uu, vv = torch.meshgrid(torch.arange(cols) / slices, torch.arange(1, stacks) / stacks, indexing="xy")
    pole_u = (jj + 0.5) / slices
    uv = torch.cat([torch.stack([pole_u, torch.zeros_like(pole_u)], -1),
                    torch.stack([uu, vv], -1).reshape(-1, 2),
                    torch.stack([pole_u, torch.ones_like(pole_u)], -1)]).float()
    south = slices + (stacks - 1) * cols
    uv_top = torch.stack([jj, tc(1, jj + 1), tc(1, jj)], -1)
    uv_bottom = torch.stack([south + jj, tc(stacks - 1, jj), tc(stacks - 1, jj + 1)], -1)
    t0, t1, t2, t3 = tc(a, b), tc(a, b + 1), tc(a + 1, b), tc(a + 1, b + 1)
    uv_quads = torch.stack([torch.stack([t0, t1, t2], -1), torch.stack([t1, t3, t2], -1)], -2).reshape(-1, 3)
    uv_faces = torch.cat([uv_top, uv_quads, uv_bottom])

    y, x = torch.meshgrid(torch.arange(tex_size) / tex_size, torch.arange(tex_size) / tex_size, indexing="ij")
    checker = ((x * 32).floor() + (y * 16).floor()) % 2
    texture = torch.stack([0.3 + 0.5 * checker, 0.5 + 0.4 * torch.sin(40 * x) * torch.cos(25 * y),
                           0.2 + 0.6 * y], -1).float()
    return Scene("sphere", verts, faces, uv, uv_faces, texture)


def signed_volume(verts: torch.Tensor, faces: torch.Tensor) -> float:
    """Signed volume of a closed mesh: positive when its faces wind counter-clockwise seen from outside."""
    v = verts.double()[faces]
    return float(torch.linalg.det(v).sum() / 6)


def make_scene(name: str, quick: bool) -> Scene:
    """Builds scene ``name`` (``spot`` or ``sphere``; ``quick`` makes the sphere small)."""
    if name == "spot":
        return spot_scene()
    slices, stacks = QUICK_SPHERE_GRID if quick else SPHERE_GRID
    return bumpy_sphere(slices, stacks)


def framing_camera(verts: torch.Tensor, size: int) -> lg.Camera:
    """A square-pixel, centred-principal-point camera looking at the mesh from the front-right, above.

    Mirrors ``_mitsuba_peer.spot_peer``: the eye is 3 bounding radii from the bounding-box centre along
    ``(0.8, 0.3, 0.5)``, and the focal length makes the mesh span ``FILL`` of the image. Built on the
    CPU in float32, so that lumigrad (after ``Camera.to(device)``) and Mitsuba see exactly the same camera.
    """
    verts = verts.detach().cpu()
    lo, hi = verts.min(0).values.double(), verts.max(0).values.double()
    centre, radius = (lo + hi) / 2, float((hi - lo).norm()) / 2
    view = torch.tensor([0.8, 0.3, 0.5], dtype=torch.float64)
    eye = centre + 3.0 * radius * view / view.norm()
    cam0 = lg.Camera.look_at(eye, centre, torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    pc = cam0.transform(verts.double())
    f = FILL / 2 * size / float((pc[:, :2] / pc[:, 2:]).abs().max())
    K = torch.tensor([[f, 0.0, size / 2], [0.0, f, size / 2], [0.0, 0.0, 1.0]], dtype=torch.float32)
    return lg.Camera(K, cam0.world_to_cam.float(), size, size)


# ------------------------------------------------------------------------------------------ the pipeline
def forward(scene: Scene, verts: torch.Tensor, tex: torch.Tensor, cam: lg.Camera,
            mipmaps: Optional[list] = None) -> torch.Tensor:
    """``rasterize -> interpolate (uv + derivatives) -> texture (trilinear) -> antialias``; ``[H, W, 3]``."""
    frags = lg.rasterize(verts, scene.faces, cam, return_bary_derivs=True)
    uv, duv = lg.interpolate(scene.uv, frags, scene.uv_faces, return_derivatives=True)
    color = lg.texture(tex, uv, uv_derivs=duv, filter="trilinear", mipmaps=mipmaps, mask=frags.mask)
    return lg.antialias(color, frags, verts, scene.faces, cam)


def floor_buffers(h: int, w: int, device: torch.device) -> list:
    """Allocates and fills the buffers the pipeline writes: the cost any implementation pays."""
    bufs = [torch.empty(h, w, dtype=torch.int32, device=device), torch.empty(h, w, device=device),
            torch.empty(h, w, 3, device=device), torch.empty(h, w, 2, device=device),
            torch.empty(h, w, 3, device=device)]
    for b in bufs:
        b.fill_(1)
    return bufs


# ------------------------------------------------------------------------------------ timing and memory
#: ``"wall"`` (default) or ``"cpu"`` (``--cpu-time``): what :func:`time_ms` measures.
CLOCK = "wall"


def time_ms(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Median milliseconds of ``fn()`` over ``repeats`` runs after one untimed warm-up: wall-clock, or with
    ``CLOCK = "cpu"`` the process's CPU time (all its threads summed; CPU device only), which other processes
    on a busy machine disturb far less than the wall clock."""
    return statistics.median(time_call(fn, repeats, warmup=1, sync=device, clock=CLOCK)) * 1e3


def peak_mib(fn: Callable[[], object], device: torch.device) -> tuple[float, bool]:
    """Peak extra memory of one call of ``fn``, in MiB, and whether the figure is exact
    (:func:`lumigrad.app.benchmarking.peak_memory`: CPU peak-RSS growth, CUDA peak allocation growth)."""
    return peak_memory(fn, device)


# ------------------------------------------------------------------------------------------ one case
@dataclass
class Row:
    """One line of the table; times in ms, memory in MiB, ``None`` where not measured."""

    scene: str
    faces: int
    size: int
    covered_px: Optional[int] = None
    floor_ms: Optional[float] = None
    raster_ms: Optional[float] = None
    fwd_ms: Optional[float] = None
    fwd_bwd_ms: Optional[float] = None
    fwd_mib: Optional[float] = None
    fwd_bwd_mib: Optional[float] = None
    mi_gbuffer_ms: Optional[float] = None
    mi_grad_ms: Optional[float] = None
    mi_grad_mib: Optional[float] = None
    agree: Optional[float] = None
    mem_exact: bool = True  # False when the peak RSS could not be reset: the MiB columns are lower bounds
    errors: list = field(default_factory=list)


def _attempt(row: Row, what: str, fn: Callable[[], object]):
    """Runs ``fn``; on an exception records ``what: Type: message`` in ``row.errors``, prints the traceback
    and returns None (the other columns are still measured)."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - a benchmark reports failures rather than stopping
        msg = f"{what}: {type(e).__name__}: {e}"
        row.errors.append(msg)
        print(f"  ERROR in {row.scene} {row.size}^2 {msg}", file=sys.stderr)
        traceback.print_exc()
        return None


def _peak(row: Row, fn: Callable[[], object], device: torch.device) -> float:
    """``peak_mib(fn)``, noting in ``row`` when the figure is only a lower bound."""
    mib, exact = peak_mib(fn, device)
    row.mem_exact &= exact
    return mib


def bench_ours(scene: Scene, cam: lg.Camera, repeats: int, device: torch.device,
               row: Row) -> Optional[torch.Tensor]:
    """Fills lumigrad's columns of ``row``; returns the face ids ``[H, W]`` (None if rasterize failed)."""
    cam, size = cam.to(device), cam.width
    row.floor_ms = _attempt(row, "floor", lambda: time_ms(lambda: floor_buffers(size, size, device),
                                                          repeats, device))
    with torch.no_grad():
        frags = _attempt(row, "rasterize", lambda: lg.rasterize(scene.verts, scene.faces, cam))
        if frags is None:
            return None
        row.covered_px = int(frags.covered.numel())
        row.raster_ms = _attempt(row, "rasterize", lambda: time_ms(
            lambda: lg.rasterize(scene.verts, scene.faces, cam, return_bary_derivs=False), repeats, device))
        mips = lg.build_mipmaps(scene.texture)
        fwd = lambda: forward(scene, scene.verts, scene.texture, cam, mips)  # noqa: E731
        row.fwd_ms = _attempt(row, "forward", lambda: time_ms(fwd, repeats, device))
        if row.fwd_ms is not None:
            row.fwd_mib = _attempt(row, "forward (memory)", lambda: _peak(row, fwd, device))

    verts = scene.verts.detach().clone().requires_grad_(True)
    tex = scene.texture.detach().clone().requires_grad_(True)

    def fwd_bwd():
        verts.grad = tex.grad = None
        loss = forward(scene, verts, tex, cam).mean()  # mip pyramid rebuilt from tex: it is a parameter
        loss.backward()
        return loss

    row.fwd_bwd_ms = _attempt(row, "forward+backward", lambda: time_ms(fwd_bwd, repeats, device))
    if row.fwd_bwd_ms is not None:
        row.fwd_bwd_mib = _attempt(row, "forward+backward (memory)", lambda: _peak(row, fwd_bwd, device))
        if verts.grad is not None and not bool(verts.grad.abs().sum() > 0):
            row.errors.append("forward+backward: the vertex gradient is all zeros")
    return frags.face_ids


def _welded_for_peer(scene: Scene):
    """Positions and faces as numpy for Mitsuba; texture coordinates are left out (see ``bench_peer``)."""
    return scene.verts.cpu().numpy(), scene.faces.cpu().int().numpy()


def bench_peer(scene: Scene, cam: lg.Camera, repeats: int, face_ids: Optional[torch.Tensor], row: Row) -> None:
    """Fills Mitsuba's columns of ``row`` (always on the CPU).

    The mesh is passed welded and without texture coordinates: Mitsuba wants one uv per vertex, and
    splitting the vertices at uv seams would add boundary edges that its projective integrator samples as
    silhouettes. Neither Mitsuba timing reads a texture (the ``uv`` AOV is then the surface parametrisation).
    """
    K, size = cam.K.double(), cam.width
    verts, faces = _welded_for_peer(scene)
    p = _attempt(row, "mitsuba setup", lambda: peer.MitsubaPeer(
        verts, faces, None, fx=float(K[0, 0]), fy=float(K[1, 1]), cx=float(K[0, 2]), cy=float(K[1, 2]),
        width=size, height=size, world_to_cam=cam.world_to_cam.double().numpy()))
    if p is None:
        return
    g = _attempt(row, "mitsuba gbuffer", p.gbuffer)
    if g is not None and face_ids is not None:
        theirs = torch.from_numpy(g["tri"]).where(torch.from_numpy(g["mask"]), torch.tensor(-1))
        row.agree = float((theirs == face_ids.cpu().long()).double().mean())
    t = _attempt(row, "mitsuba gbuffer", lambda: p.time_gbuffer(repeats))
    row.mi_gbuffer_ms = None if t is None else statistics.median(t) * 1e3
    t = _attempt(row, "mitsuba gradient", lambda: p.time_vertex_gradient(repeats))
    row.mi_grad_ms = None if t is None else statistics.median(t) * 1e3
    if t is not None:
        res = _attempt(row, "mitsuba gradient (memory)", lambda: peer.peak_rss_growth(p.vertex_gradient))
        row.mi_grad_mib = None if res is None else res[1] / 2**20
        row.mem_exact &= res is None or res[2]


# ---------------------------------------------------------------------------------------------- output
COLUMNS = [  # (header, Row attribute, kind)
    ("scene", "scene", "s"), ("faces", "faces", "int"), ("size", "size", "size"),
    ("covered px", "covered_px", "int"), ("floor ms", "floor_ms", "ms"), ("raster ms", "raster_ms", "ms"),
    ("fwd ms", "fwd_ms", "ms"), ("fwd+bwd ms", "fwd_bwd_ms", "ms"), ("peak MiB fwd", "fwd_mib", "mib"),
    ("peak MiB fwd+bwd", "fwd_bwd_mib", "mib"), ("mitsuba gbuffer ms", "mi_gbuffer_ms", "ms"),
    ("mitsuba grad ms", "mi_grad_ms", "ms"), ("mitsuba grad MiB", "mi_grad_mib", "mib"),
    ("face-id agree", "agree", "pct"),
]


def _fmt(value, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "int":
        return f"{value:,}"
    if kind == "size":
        return f"{value}^2"
    if kind == "pct":
        return f"{100 * value:.2f}%"
    if kind in ("ms", "mib"):
        return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 1000 else f"{value:.0f}"
    return str(value)


def table(rows: list[Row]) -> list[list[str]]:
    """Header plus one list of formatted cells per row."""
    return [[c[0] for c in COLUMNS]] + [[_fmt(getattr(r, c[1]), c[2]) for c in COLUMNS] for r in rows]


def text_table(rows: list[Row]) -> str:
    """Aligned plain-text table (numbers right-aligned)."""
    cells = table(rows)
    widths = [max(len(line[k]) for line in cells) for k in range(len(COLUMNS))]
    out = []
    for n, line in enumerate(cells):
        out.append("  ".join(c.ljust(w) if k == 0 else c.rjust(w) for k, (c, w) in enumerate(zip(line, widths))))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def markdown_table(rows: list[Row]) -> str:
    cells = table(rows)
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "|".join("---" if k == 0 else "---:" for k in
                                                               range(len(COLUMNS))) + "|"]
    lines += ["| " + " | ".join(line) + " |" for line in cells[1:]]
    return "\n".join(lines)


def machine_info(device: torch.device) -> dict:
    """CPU count, library versions and device, for the line above the table."""
    import warp

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    model = cpu_model()
    dev = str(device) if device.type != "cuda" else f"cuda ({torch.cuda.get_device_name(device)})"
    return {"cpus": cpus, "cpu_model": model, "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "warp": warp.__version__, "lumigrad": lg.__version__, "device": dev, "python": platform.python_version(),
            "LUMIGRAD_NUM_THREADS": os.environ.get("LUMIGRAD_NUM_THREADS")}


def machine_line(info: dict) -> str:
    return (f"machine: {info['cpus']} CPUs ({info['cpu_model']}), torch {info['torch']} "
            f"({info['torch_threads']} threads), warp {info['warp']}, lumigrad {info['lumigrad']}, "
            f"device {info['device']}, surface + interpolation: {info.get('surface', 'fused kernels')}")


def write_out(path: Path, info: dict, peer_note: str, args: dict, rows: list[Row]) -> None:
    """Writes the results as JSON (``.json``) or as a markdown table (any other suffix)."""
    if path.suffix == ".json":
        path.write_text(json.dumps({"machine": info, "mitsuba": peer_note, "args": args,
                                    "rows": [asdict(r) for r in rows]}, indent=2) + "\n")
        return
    errors = [f"- {r.scene} {r.size}^2: {e}" for r in rows for e in r.errors]
    path.write_text("\n".join(["# lumigrad raster benchmark", "", machine_line(info), "",
                               f"mitsuba: {peer_note}", "", markdown_table(rows), ""]
                              + (["## Errors", ""] + errors + [""] if errors else [])))


def use_pytorch_twins() -> None:
    """Switch rasterize's surface recomputation and interpolate to their PyTorch twins (``--twins``)."""
    importlib.import_module("lumigrad.raster.rasterize").FUSED_SURFACE = False
    importlib.import_module("lumigrad.raster.interpolate").FUSED_INTERPOLATE = False


# ------------------------------------------------------------------------------------------------ main
def parse_args(argv=None) -> argparse.Namespace:
    """Parses the command line (``argv`` defaults to ``sys.argv[1:]``) and fills in the defaults."""
    ap = argparse.ArgumentParser(prog="benchmarks/raster.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", nargs="+", choices=SCENES, default=None,
                    help=f"scenes to run (default: {' '.join(SCENES)})")
    ap.add_argument("--sizes", nargs="+", type=int, default=None, metavar="N",
                    help=f"square image sizes (default: {' '.join(map(str, SIZES))}; {QUICK_SIZE} with --quick)")
    ap.add_argument("--repeats", type=int, default=None, metavar="N", help="timed runs per case, after one warm-up "
                    "(default: 7; 1 with --quick)")
    ap.add_argument("--device", default="cpu", help="torch device for lumigrad (cpu, cuda, cuda:1...); "
                    "Mitsuba always runs on the CPU (default: cpu)")
    ap.add_argument("--no-peer", action="store_true", help="skip the Mitsuba 3 columns")
    quick_faces = 2 * QUICK_SPHERE_GRID[0] * (QUICK_SPHERE_GRID[1] - 1)
    ap.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK_SIZE}^2, 1 repeat, a "
                    f"{quick_faces:,}-triangle sphere instead of the 1M one (explicit flags still win)")
    ap.add_argument("--twins", action="store_true", help="run the PyTorch twins of the fused surface and "
                    "interpolation kernels (autograd through the recomputation, as before they were fused), for "
                    "before / after timings in one session")
    ap.add_argument("--cpu-time", action="store_true", help="time lumigrad in process CPU time (all threads "
                    "summed) instead of wall-clock, for before / after comparisons on a busy machine; CPU device only, "
                    "implies --no-peer")
    ap.add_argument("--out", type=Path, default=None, metavar="FILE", help="also write the results to FILE "
                    "(JSON if it ends in .json, else markdown)")
    args = ap.parse_args(argv)
    args.scenes = args.scenes or list(SCENES)
    args.sizes = args.sizes or ([QUICK_SIZE] if args.quick else list(SIZES))
    args.repeats = args.repeats or (1 if args.quick else 7)
    if args.repeats < 1 or min(args.sizes) < 1:
        ap.error("--repeats and --sizes must be positive")
    if args.cpu_time:
        if torch.device(args.device).type != "cpu":
            ap.error("--cpu-time measures the CPU device only")
        args.no_peer = True
    return args


def main(argv=None) -> int:
    """Runs the benchmark; returns 1 if any measurement raised, else 0."""
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"--device {args.device}: CUDA is not available in this torch build ({torch.__version__})")
        return 2
    info = machine_info(device)
    global CLOCK
    CLOCK = "cpu" if args.cpu_time else "wall"
    if args.twins:
        use_pytorch_twins()
    info["surface"] = "PyTorch twins" if args.twins else "fused kernels"
    print(machine_line(info))
    use_peer, peer_note = False, "skipped (--no-peer)"
    if not args.no_peer:
        use_peer, why = peer.available()
        if use_peer:
            import drjit as dr

            peer_note = f"{why}; {dr.thread_count()} threads, always on the CPU"
        else:
            peer_note = f"unavailable, columns left empty: {why}"
    print(f"mitsuba: {peer_note}")

    rows = []
    for name in args.scenes:
        scene = make_scene(name, args.quick).to(device)
        print(f"{name}: {len(scene.verts):,} vertices, {len(scene.faces):,} triangles, texture "
              f"{tuple(scene.texture.shape)}, signed volume {signed_volume(scene.verts.cpu(), scene.faces.cpu()):.3f}",
              flush=True)
        for size in args.sizes:
            row = Row(name, len(scene.faces), size)
            cam = framing_camera(scene.verts, size)
            face_ids = bench_ours(scene, cam, args.repeats, device, row)
            if use_peer:
                bench_peer(scene, cam, args.repeats, face_ids, row)
            rows.append(row)
            print(f"  {size}^2 done" + (f" ({len(row.errors)} errors)" if row.errors else ""), flush=True)

    print()
    print(text_table(rows))
    clock = " (process CPU ms, all threads summed)" if args.cpu_time else ""
    print(f"\nmedian of {args.repeats} after 1 warm-up{clock}. floor: allocate + fill face ids, depth, bary, uv, "
          f"colour. "
          f"fwd: no_grad, prebuilt mips; fwd+bwd: loss = mean(antialiased), grads to verts and texture "
          f"(mips rebuilt). peak MiB: {'peak RSS growth' if device.type == 'cpu' else 'max_memory_allocated growth'}."
          + ("" if not use_peer else " mitsuba (CPU): gbuffer = aov integrator, 1 spp; grad = direct_projective, "
             "guiding none, 1 spp, d mean / d vertex positions; agree = pixels with the same face id "
             "(or both background)."))
    if not all(r.mem_exact for r in rows):
        print("note: the peak RSS could not be reset (/proc/self/clear_refs); MiB figures are lower bounds")
    errors = [f"{r.scene} {r.size}^2: {e}" for r in rows for e in r.errors]
    if errors:
        print("\nERRORS:\n" + "\n".join("  " + e for e in errors))
    if args.out:
        write_out(args.out, info, peer_note, {k: str(v) for k, v in vars(args).items()}, rows)
        print(f"wrote {args.out}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
