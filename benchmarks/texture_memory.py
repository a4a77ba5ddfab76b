"""Memory and time of one texture lookup's forward + backward, per filter and per gradient wanted.

A 1024^2 RGB float32 texture (``--texture``) is sampled on an N x N grid (``--sizes``) of texture coordinates
that tile it ``--tiles`` times (an affine map, with its screen-space derivatives as ``uv_derivs`` for trilinear
filtering through the mip pyramid), every sample unmasked. For each filter and each set of gradients wanted
(``both``: the texture and uv / uv_derivs; ``tex``; ``uv``) it prints, after one warm-up:

* ``record MiB``: the bytes the forward keeps for its backward (``lumigrad.kernels.texture.record_bytes``;
  ``-`` where the code measured has no such function);
* ``peak MiB``: growth of the peak resident set size during one forward + backward
  (:func:`lumigrad.app.benchmarking.peak_memory`: fresh pages only; buffers of ``kernels/buffer_pool.py``
  reused from the warm-up do not count, and since branch texrecord the record is one of them: it stays
  resident between calls);
* ``fwd+bwd ms`` and ``fwd ms`` (under ``no_grad``): process CPU time, median of ``--repeats`` runs.

Run it at one thread for comparable CPU times::

    OMP_NUM_THREADS=1 LUMIGRAD_NUM_THREADS=1 .venv/bin/python benchmarks/texture_memory.py
    OMP_NUM_THREADS=1 LUMIGRAD_NUM_THREADS=1 .venv/bin/python benchmarks/texture_memory.py --sizes 512 --repeats 9
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import lumigrad as lg
import lumigrad.kernels.texture as kernel_texture
from lumigrad.app.benchmarking import format_table, peak_memory

FILTERS = ("nearest", "bilinear", "trilinear")
WANTS = {"both": (True, True), "tex": (True, False), "uv": (False, True)}
MiB = 2 ** 20


def sample_grid(n: int, tiles: float):
    """Texture coordinates ``[n, n, 2]`` of an n x n grid mapped ``tiles`` times across the texture (slightly
    sheared, so rows do not read the same texels), and their derivatives ``[n, n, 2, 2]``."""
    y, x = torch.meshgrid((torch.arange(n) + 0.5) / n, (torch.arange(n) + 0.5) / n, indexing="ij")
    uv = torch.stack([tiles * x + 0.1 * y, tiles * y], -1)
    duv = torch.tensor([[tiles / n, 0.1 / n], [0.0, tiles / n]]).expand(n, n, 2, 2).contiguous()
    return uv, duv


def lookup(tex, uv, duv, filter: str, want: str):
    """One forward (+ backward when a gradient is wanted); returns its record's bytes (the output is dropped: a
    pooled output still held would make the next call take a fresh buffer)."""
    want_tex, want_uv = WANTS[want]
    t = tex.requires_grad_(want_tex)
    u = uv.requires_grad_(want_uv)
    d = duv.requires_grad_(want_uv)
    out = lg.texture(t, u, uv_derivs=d if filter == "trilinear" else None, filter=filter)
    fn = out.grad_fn
    while fn is not None and not hasattr(fn, "record_bytes"):
        fn = fn.next_functions[0][0] if fn.next_functions else None
    recorded = getattr(fn, "record_bytes", None)
    if torch.is_grad_enabled() and out.requires_grad:
        out.backward(torch.ones_like(out))
    for x in (t, u, d):
        x.grad = None
    return recorded


def cpu_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append((time.process_time() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 2048])
    parser.add_argument("--filters", nargs="+", default=list(FILTERS), choices=FILTERS)
    parser.add_argument("--wants", nargs="+", default=list(WANTS), choices=list(WANTS))
    parser.add_argument("--texture", type=int, default=1024)
    parser.add_argument("--tiles", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    has_record = hasattr(kernel_texture, "record_bytes")
    tex = torch.rand(args.texture, args.texture, 3, generator=torch.Generator().manual_seed(0))
    rows = []
    for n in args.sizes:
        uv, duv = sample_grid(n, args.tiles)
        for filter in args.filters:
            with torch.no_grad():
                lookup(tex, uv, duv, filter, "both")
                fwd = cpu_ms(lambda: lookup(tex, uv, duv, filter, "both"), args.repeats)
            for want in args.wants:
                recorded = lookup(tex, uv, duv, filter, want)  # warm-up (pools, caches)
                peak, _ = peak_memory(lambda: lookup(tex, uv, duv, filter, want))
                both = cpu_ms(lambda: lookup(tex, uv, duv, filter, want), args.repeats)
                record = recorded / MiB if has_record and recorded is not None else None
                rows.append(dict(samples=f"{n}^2", filter=filter, grads=want, record=record, peak=peak, both=both,
                                 fwd=fwd))
                print(rows[-1], flush=True)
    print(format_table(rows, ["samples", "filter", "grads", ("record", "record MiB"), ("peak", "peak MiB"),
                              ("both", "fwd+bwd ms"), ("fwd", "fwd ms")], digits=1))


if __name__ == "__main__":
    main()
