"""Ray origins offset off a surface, so that a ray leaving it does not hit it again (float32 kernels)."""

from __future__ import annotations

import warp as wp

wp.set_module_options({"enable_backward": False})


@wp.func
def offset_origin_wp(p: wp.vec3, n: wp.vec3, d: wp.vec3):
    """``lumigrad.raytrace.offset_ray_origin`` (Wächter and Binder 2019) in float32, of a unit normal ``n``."""
    nn = n
    if wp.dot(nn, d) < 0.0:
        nn = -nn
    out = wp.vec3()
    for k in range(3):
        steps = int(256.0 * nn[k])
        bits = wp.cast(p[k], wp.int32)
        if p[k] < 0.0:
            bits = bits - steps
        else:
            bits = bits + steps
        moved = wp.cast(bits, wp.float32)
        if wp.abs(p[k]) < 1.0 / 32.0:
            out[k] = p[k] + (1.0 / 65536.0) * nn[k]
        else:
            out[k] = moved
    return out
