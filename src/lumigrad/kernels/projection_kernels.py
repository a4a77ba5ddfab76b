"""The visibility kernels' per-vertex projection, in a Warp module of its own compiled without fused multiply-adds.

Faces with every corner in front of the near plane are drawn from these projected vertices; faces crossing it
are clipped and projected by ``cameras.projection.project_points`` in PyTorch. A shared edge between the two
must get the same bits from both, or a pixel centre on it could fall between them (no face covers it). PyTorch
rounds each product and sum on its own, so this module sets ``fuse_fp`` off: Warp's compiler would otherwise be
free to contract ``a * b + c`` into one fused multiply-add (rounded once), as CUDA builds do.
"""

from __future__ import annotations

import warp as wp

wp.set_module_options({"enable_backward": False, "fuse_fp": False})


_FLOAT64_MAX = wp.constant(wp.float64(1.7976931348623157e308))


@wp.func
def pow2_above(m: wp.float64):
    """The power of two ``2^e`` with ``2^(e-1) <= m < 2^e`` (``e`` the exponent of ``frexp(m)``; ``cameras.
    projection.pow2_scale``), or 1 where ``m`` is 0 or not finite. Doubling and halving are exact, so this is
    the bits of ``ldexp(1, frexp(m).exponent)``; a few steps for coordinates near 1."""
    s = wp.float64(1.0)
    if m > wp.float64(0.0) and m <= _FLOAT64_MAX:
        while s <= m:
            s = s * wp.float64(2.0)
        while s * wp.float64(0.5) > m:
            s = s * wp.float64(0.5)
    return s


@wp.kernel
def project_vertices(offset: int, end: int, verts_cam: wp.array2d(dtype=wp.float64),
                     intr: wp.array2d(dtype=wp.float64),
                     num_verts: int, ortho: int, eps: wp.float64, proj: wp.array2d(dtype=wp.float64),
                     vertex_scale: wp.array(dtype=wp.float64)):
    """Per camera-frame vertex ``[N V, 3]`` (float64): its (u, v, z), with ``intr [N, 9]``
    the views' ``K`` row-major. The operations of ``cameras.projection.project_points`` in the same order,
    so the values are the same bits: ``u = K00 x' + K01 y' + K02``, ``v = K11 y' + K12`` with
    ``(x', y') = (x, y) / z`` (``z`` replaced by ``eps`` where ``|z| < eps``), or ``(x, y)`` for ``ortho``.
    Also the vertex's power of two above its largest coordinate (:func:`pow2_above`), which the surface
    kernels divide its faces by."""
    i = offset + wp.tid()
    view = i // num_verts
    x = verts_cam[i, 0]
    y = verts_cam[i, 1]
    z = verts_cam[i, 2]
    px = x
    py = y
    if ortho == 0:
        zz = z
        if wp.abs(z) < eps:
            zz = eps
        px = x / zz
        py = y / zz
    proj[i, 0] = intr[view, 0] * px + intr[view, 1] * py + intr[view, 2]
    proj[i, 1] = intr[view, 4] * py + intr[view, 5]
    proj[i, 2] = z
    vertex_scale[i] = pow2_above(wp.max(wp.max(wp.abs(x), wp.abs(y)), wp.abs(z)))
