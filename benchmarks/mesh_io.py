"""Benchmark: reading large meshes (``read_obj``, ``read_ply``): wall-clock time and peak memory, before / after.

Meshes: a subdivided icosphere cut to exactly ``--faces`` triangles (default 10k, 100k, 1M and 4M; unused
vertices dropped), written once as OBJ (``v`` and ``f a b c`` lines, positions at full float64 precision),
as binary little-endian PLY and as ``ply-mixed``, the same PLY with every second face written as a quad
(its triangle with the last corner repeated: rows of 3 and 4 indices interleaved, the variable-length path;
``faces`` then counts the triangles after fan triangulation) into ``--workdir`` (a temporary folder by default). Each reading runs in a
fresh Python process, so its peak resident set growth (``lumigrad.app.benchmarking.peak_rss_growth``) is its
own (measured on the first read of the big file, after one read of a tiny one: lazy imports are not counted);
the time is the best of ``--repeats`` reads in that process (one read from 4M faces on). ``--before-src`` names the ``src`` folder
of another lumigrad checkout (e.g. the main branch before the numpy OBJ reader) to read with as well; its
rows are labelled ``before``. ``--line-reader`` adds rows with this checkout's OBJ fast path switched off
(the line-by-line reader that files the fast path does not take still use).

    python benchmarks/mesh_io.py
    python benchmarks/mesh_io.py --faces 10000 100000 --before-src ../main/src
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"

MEASURE = r"""
import json, sys, time
import lumigrad.io as io
from lumigrad.app.benchmarking import peak_rss_growth
fmt, path, repeats, line_reader = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
if line_reader:
    import lumigrad.io.obj as obj
    obj.parse_obj_arrays = lambda data, with_materials: None
read = io.read_obj if fmt == "obj" else io.read_ply
fmt = "ply" if fmt == "ply-mixed" else fmt
import os, tempfile, torch
with tempfile.TemporaryDirectory() as tmp:  # warm up: lazy imports and first calls are not the reading's cost
    small = os.path.join(tmp, "warm." + fmt)
    (io.write_obj if fmt == "obj" else io.write_ply)(small, torch.rand(4, 3), torch.tensor([[0, 1, 2], [0, 2, 3]]))
    read(small)
_, growth, exact = peak_rss_growth(read, path)
best = float("inf")
for _ in range(repeats):
    t = time.perf_counter()
    out = read(path)
    best = min(best, time.perf_counter() - t)
    del out
faces = read(path)[1] if fmt == "obj" else read(path).faces
print(json.dumps({"seconds": best, "bytes": growth, "exact": exact, "faces": int(faces.shape[0])}))
"""


def write_meshes(faces: int, folder: Path) -> dict:
    """``{"obj": path, "ply": path}`` of an icosphere cut to ``faces`` triangles (written once, then reused)."""
    paths = {"obj": folder / f"sphere_{faces}.obj", "ply": folder / f"sphere_{faces}.ply",
             "ply-mixed": folder / f"sphere_{faces}_mixed.ply"}
    if all(p.is_file() for p in paths.values()):
        return paths
    sys.path.insert(0, str(SRC))
    import torch

    import lumigrad as lg

    level = 0
    while 20 * 4 ** level < faces:
        level += 1
    verts, tris = lg.geometry.icosphere(level, dtype=torch.float64)
    tris = tris[:faces]
    used, remap = torch.unique(tris, return_inverse=True)
    verts, tris = verts[used], remap.reshape(-1, 3)
    lg.io.write_obj(paths["obj"], verts, tris)
    lg.io.write_ply(paths["ply"], verts.float(), tris)
    _write_mixed_ply(paths["ply-mixed"], verts.float().numpy(), tris.numpy())
    return paths


def _write_mixed_ply(path: Path, verts, tris) -> None:
    """Binary PLY whose odd faces are quads ``(a, b, c, c)``: rows of 3 and 4 indices interleaved."""
    import numpy as np

    n = len(tris)
    quad = np.arange(n) % 2 == 1
    rows = np.zeros((n, 17), np.uint8)
    corners = np.concatenate([tris, tris[:, 2:]], 1).astype("<i4")
    rows[:, 0] = np.where(quad, 4, 3)
    rows[:, 1:] = corners.view(np.uint8).reshape(n, 16)
    keep = np.ones((n, 17), bool)
    keep[~quad, 13:] = False
    header = (f"ply\nformat binary_little_endian 1.0\nelement vertex {len(verts)}\nproperty float x\n"
              f"property float y\nproperty float z\nelement face {n}\nproperty list uchar int vertex_indices\n"
              "end_header\n").encode()
    path.write_bytes(header + verts.astype("<f4").tobytes() + rows[keep].tobytes())


def measure(src: Path, fmt: str, path: Path, repeats: int, line_reader: bool = False) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    out = subprocess.run([sys.executable, "-c", MEASURE, fmt, str(path), str(repeats), "1" if line_reader else "0"],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, nargs="+", default=[10_000, 100_000, 1_000_000, 4_000_000])
    ap.add_argument("--formats", nargs="+", default=["obj", "ply"], choices=["obj", "ply", "ply-mixed"])
    ap.add_argument("--repeats", type=int, default=3, help="reads per process; the best time is reported")
    ap.add_argument("--before-src", type=Path, default=None, help="src folder of the checkout to compare with")
    ap.add_argument("--line-reader", action="store_true", help="also read OBJ with the fast path switched off")
    ap.add_argument("--workdir", type=Path, default=None, help="where the meshes are written (default: a temp dir)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.workdir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        print(f"load: {os.getloadavg()[0]:.2f} (1-min average at the start), OMP_NUM_THREADS="
              f"{os.environ.get('OMP_NUM_THREADS', '1')}")
        print(f"{'format':6} {'faces':>9} {'file MB':>8} {'reader':12} {'seconds':>9} {'peak RSS MB':>12} "
              f"{'bytes/face':>10}")
        for faces in args.faces:
            t = time.perf_counter()
            paths = write_meshes(faces, folder)
            written = time.perf_counter() - t
            for fmt in args.formats:
                runs = [("after", SRC, False)]
                if args.before_src is not None:
                    runs.insert(0, ("before", args.before_src, False))
                if args.line_reader and fmt == "obj":
                    runs.append(("line reader", SRC, True))
                size = paths[fmt].stat().st_size / 2 ** 20
                for label, src, line in runs:
                    r = measure(src, fmt, paths[fmt], args.repeats if faces <= 1_000_000 else 1, line)
                    assert r["faces"] == (faces + faces // 2 if fmt == "ply-mixed" else faces), r
                    print(f"{fmt:6} {faces:>9} {size:>8.1f} {label:12} {r['seconds']:>9.3f} "
                          f"{r['bytes'] / 2 ** 20:>12.1f} {r['bytes'] / faces:>10.0f}"
                          + ("" if r["exact"] else "  (peak not reset: lower bound)"), flush=True)
            if written > 1:
                print(f"  (writing the {faces}-face meshes took {written:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
