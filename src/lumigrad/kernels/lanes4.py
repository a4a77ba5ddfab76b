"""Four float64 lanes as one ``wp.vec4d``: the component-wise operations Warp's vector type lacks (square root,
comparisons, selects, clamps), for kernels that run four independent items (e.g. four lights) side by side.

Written on ``vec4d`` values with per-component code and no branches. Warp's vector operations are
per-component C++ too, so LLVM's SLP vectoriser still chooses the SIMD form; what the ``vec4d`` layout gives it
is the lanes already adjacent in memory and registers (measured: the fused point-light forward's block loop
almost fully packed, its backward about two thirds; ``docs/benchmarks.md``, branch lights4x). A mask is a
``vec4d`` of 1 (true) and 0 (false); :func:`select` takes any non-zero as true.
"""

from __future__ import annotations

import warp as wp

wp.set_module_options({"enable_backward": False})


@wp.func
def splat(s: wp.float64):
    """``(s, s, s, s)``."""
    return wp.vec4d(s, s, s, s)


@wp.func
def sqrt4(a: wp.vec4d):
    """The component-wise square root."""
    return wp.vec4d(wp.sqrt(a[0]), wp.sqrt(a[1]), wp.sqrt(a[2]), wp.sqrt(a[3]))


@wp.func
def greater(a: wp.vec4d, b: wp.vec4d):
    """The mask ``a > b``."""
    one = wp.float64(1.0)
    zero = wp.float64(0.0)
    return wp.vec4d(wp.where(a[0] > b[0], one, zero), wp.where(a[1] > b[1], one, zero),
                    wp.where(a[2] > b[2], one, zero), wp.where(a[3] > b[3], one, zero))


@wp.func
def greater_equal(a: wp.vec4d, b: wp.vec4d):
    """The mask ``a >= b``."""
    one = wp.float64(1.0)
    zero = wp.float64(0.0)
    return wp.vec4d(wp.where(a[0] >= b[0], one, zero), wp.where(a[1] >= b[1], one, zero),
                    wp.where(a[2] >= b[2], one, zero), wp.where(a[3] >= b[3], one, zero))


@wp.func
def select(mask: wp.vec4d, a: wp.vec4d, b: wp.vec4d):
    """Per lane ``a`` where ``mask`` is non-zero, else ``b`` (a select: the other value is never used, so a NaN or
    infinity there does not leak)."""
    zero = wp.float64(0.0)
    return wp.vec4d(wp.where(mask[0] != zero, a[0], b[0]), wp.where(mask[1] != zero, a[1], b[1]),
                    wp.where(mask[2] != zero, a[2], b[2]), wp.where(mask[3] != zero, a[3], b[3]))


@wp.func
def clamp4(a: wp.vec4d, lo: wp.float64, hi: wp.float64):
    """Each component clamped to ``[lo, hi]``."""
    return wp.vec4d(wp.min(wp.max(a[0], lo), hi), wp.min(wp.max(a[1], lo), hi), wp.min(wp.max(a[2], lo), hi),
                    wp.min(wp.max(a[3], lo), hi))
