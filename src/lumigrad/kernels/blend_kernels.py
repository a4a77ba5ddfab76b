"""The antialias blend across silhouette crossings (float32 and float64 arrays), with an explicit backward.

Crossing ``e`` joins the covered pixel ``p_in[e]`` to its uncovered neighbour ``p_out[e]``; the edge crosses
the segment between their centres at ``t[e]`` in [0, 1] from ``p_in``. With ``r_out = max(t - 1/2, 0)`` and
``r_in = max(1/2 - t, 0)`` the blend adds to a copy of ``color``

    out[p_out] += r_out (color[p_in] - color[p_out]),   out[p_in] += r_in (color[p_out] - color[p_in])

(``raster/antialias.py``'s ``blend_crossings_reference`` is the PyTorch twin). A pixel can take part in
several crossings, so the adds are atomic; on CPU the launch is one thread (crossings are few: the
silhouette's pixels). The backward adds to a copy of the output's cotangent ``G``

    g_color[p_in] += r_out G[p_out] - r_in G[p_in],   g_color[p_out] += r_in G[p_in] - r_out G[p_out]

and writes ``g_t[e] = [t >= 1/2] G[p_out] . (c_in - c_out) - [t <= 1/2] G[p_in] . (c_out - c_in)`` (the
subgradient of the clamps that ``torch.clamp_min`` takes: both sides pass at ``t = 1/2``).
"""

from __future__ import annotations

from typing import Any

import warp as wp

wp.set_module_options({"enable_backward": False})


@wp.kernel
def blend_forward(color: wp.array2d(dtype=Any), p_in: wp.array(dtype=wp.int64), p_out: wp.array(dtype=wp.int64),
                  t: wp.array(dtype=Any), out: wp.array2d(dtype=Any)):
    e = wp.tid()
    i = int(p_in[e])
    o = int(p_out[e])
    half = type(t[e])(0.5)
    r_out = wp.max(t[e] - half, type(t[e])(0.0))
    r_in = wp.max(half - t[e], type(t[e])(0.0))
    for c in range(color.shape[1]):
        diff = color[i, c] - color[o, c]
        wp.atomic_add(out, o, c, r_out * diff)
        wp.atomic_add(out, i, c, -r_in * diff)


@wp.kernel
def blend_backward(color: wp.array2d(dtype=Any), p_in: wp.array(dtype=wp.int64), p_out: wp.array(dtype=wp.int64),
                   t: wp.array(dtype=Any), g_out: wp.array2d(dtype=Any), want_color: int,
                   g_color: wp.array2d(dtype=Any), g_t: wp.array(dtype=Any)):
    e = wp.tid()
    i = int(p_in[e])
    o = int(p_out[e])
    zero = type(t[e])(0.0)
    half = type(t[e])(0.5)
    r_out = wp.max(t[e] - half, zero)
    r_in = wp.max(half - t[e], zero)
    gt = zero
    for c in range(color.shape[1]):
        diff = color[i, c] - color[o, c]
        if t[e] >= half:
            gt += g_out[o, c] * diff
        if t[e] <= half:
            gt += g_out[i, c] * diff
        if want_color != 0:
            push = r_out * g_out[o, c] - r_in * g_out[i, c]
            wp.atomic_add(g_color, i, c, push)
            wp.atomic_add(g_color, o, c, -push)
    g_t[e] = gt


def _overload_all() -> None:
    """float32 and float64 overloads, declared at import (see ``surface_kernels``)."""
    i64 = wp.array(dtype=wp.int64)
    for f in (wp.float32, wp.float64):
        a1, a2 = wp.array(dtype=f), wp.array2d(dtype=f)
        wp.overload(blend_forward, [a2, i64, i64, a1, a2])
        wp.overload(blend_backward, [a2, i64, i64, a1, a2, int, a2, a1])


_overload_all()
