"""Counter-based uniform random numbers: a hash of ``(seed, ray, depth, dimension)``, the same bits in PyTorch
and in Warp.

The path tracer's PyTorch transport (:func:`lumigrad.raytrace.transport.sample_paths`) and its fused Warp
kernel (:mod:`lumigrad.kernels.path_kernels`) draw every random number of a path from this function, so the
two implementations trace the same paths for the same seed, and a replay (the adjoint pass) draws the same
numbers without storing them. No generator state: the number is a pure function of its coordinates.

The hash chains the PCG-RXS-M-XS 32-bit permutation (Jarzynski and Olano 2020, "Hash functions for GPU
rendering", JCGT 9(3)), ``pcg(v)``, over the coordinates::

    h = pcg(pcg(pcg(pcg(pcg(seed_lo) ^ seed_hi) ^ ray) ^ depth) ^ dim)
    u = (h >> 8) * 2^-24                  in [0, 1), a multiple of 2^-24 (exact in float32 and float64)

with ``seed_lo, seed_hi`` the low and high 32 bits of the seed. :func:`uniform_counter_ref` is the PyTorch side
(int64 arithmetic masked to 32 bits); :func:`pcg_hash_wp` and :func:`uniform_counter_wp` are the Warp side
(``uint32`` arithmetic, which wraps), used inside kernels and by :func:`uniform_counter`, the fast batch of
numbers the PyTorch transport draws (the same bits as the reference).
"""

from __future__ import annotations

import torch
import warp as wp

from ._runtime import as_warp, ensure_init, launch_split

__all__ = ["uniform_counter", "uniform_counter_ref", "split_seed", "pcg_hash_wp", "ray_key_wp", "uniform_counter_wp"]

_MASK = 0xFFFFFFFF
_INV_2_24 = 1.0 / 16777216.0


def split_seed(seed: int) -> tuple:
    """The low and high 32 bits of a non-negative ``seed`` (below 2^64)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 64:
        raise ValueError(f"seed must be an int in [0, 2^64); got {seed!r}")
    return seed & _MASK, (seed >> 32) & _MASK


def _pcg(v: torch.Tensor) -> torch.Tensor:
    """PCG-RXS-M-XS on int64 tensors holding uint32 values (products stay below 2^63)."""
    state = (v * 747796405 + 2891336453) & _MASK
    word = (((state >> ((state >> 28) + 4)) ^ state) * 277803737) & _MASK
    return (word >> 22) ^ word


def uniform_counter_ref(seed: int, rays: torch.Tensor, depth: int, dims: int, dtype: torch.dtype) -> torch.Tensor:
    """Uniform numbers ``[R, dims]`` in [0, 1) of rays ``rays [R]`` (int64 indices) at ``depth``, in PyTorch.

    The reference twin of :func:`uniform_counter` (int64 tensor ops masked to 32 bits; slow: a variable shift
    per element is not vectorised, about a second for a million rays times 6 numbers).

    Args:
        seed: a non-negative int below 2^64.
        rays: ``[R]`` integer ray indices (below 2^32), any device.
        depth: the path vertex, a non-negative int below 2^32.
        dims: how many numbers per ray (dimension ``0 .. dims - 1``).
        dtype: the float dtype of the result.

    Returns:
        ``[R, dims]`` multiples of ``2^-24`` in [0, 1) (the same values in float32 and float64).

    **Differentiability:** none (random numbers).

    Example: the same coordinates give the same number, whatever else is drawn::

        >>> a = uniform_counter_ref(7, torch.arange(4), 2, 3, torch.float64)
        >>> bool((a[2:3] == uniform_counter_ref(7, torch.tensor([2]), 2, 3, torch.float64)).all())
        True
    """
    lo, hi = split_seed(seed)
    base = _pcg(torch.tensor(lo, dtype=torch.int64, device=rays.device)) ^ hi
    h = _pcg(_pcg(base) ^ (rays.to(torch.int64) & _MASK))
    h = _pcg(h ^ (depth & _MASK))
    dim = torch.arange(dims, dtype=torch.int64, device=rays.device)
    h = _pcg(h[:, None] ^ dim[None, :])
    return (h >> 8).to(dtype) * _INV_2_24


def uniform_counter(seed: int, rays: torch.Tensor, depth: int, dims: int, dtype: torch.dtype) -> torch.Tensor:
    """Uniform numbers ``[R, dims]`` in [0, 1) of rays ``rays [R]`` at ``depth``: the bits of
    :func:`uniform_counter_ref`, computed by a Warp kernel (one thread per ray, on ``rays``' device).

    Args:
        seed: a non-negative int below 2^64.
        rays: ``[R]`` integer ray indices in [0, 2^32), any device Warp runs on (CPU, CUDA).
        depth: the path vertex, a non-negative int below 2^32.
        dims: how many numbers per ray (dimension ``0 .. dims - 1``).
        dtype: the float dtype of the result.

    Returns:
        ``[R, dims]`` multiples of ``2^-24`` in [0, 1) (the same values in float32 and float64).

    **Differentiability:** none (random numbers).
    """
    lo, hi = split_seed(seed)
    R = rays.shape[0]
    out = torch.empty(R, dims, dtype=torch.float32, device=rays.device)
    if R and dims:
        ensure_init()
        idx = rays.to(torch.int64).contiguous()
        launch_split(_fill_uniform, R, [wp.uint32(lo), wp.uint32(hi), as_warp(idx), int(depth) & _MASK, dims,
                                        as_warp(out)], rays.device, min_chunk=4096)
    return out.to(dtype)


@wp.func
def pcg_hash_wp(v: wp.uint32) -> wp.uint32:
    """PCG-RXS-M-XS on ``uint32`` (wrapping arithmetic): the Warp twin of the PyTorch ``_pcg``."""
    state = v * wp.uint32(747796405) + wp.uint32(1445668226) + wp.uint32(1445668227)  # 2891336453 (> int32)
    word = ((state >> ((state >> wp.uint32(28)) + wp.uint32(4))) ^ state) * wp.uint32(277803737)
    return (word >> wp.uint32(22)) ^ word


@wp.func
def ray_key_wp(seed_lo: wp.uint32, seed_hi: wp.uint32, ray: wp.uint32) -> wp.uint32:
    """The hash of ``(seed, ray)``, computed once per ray; :func:`uniform_counter_wp` finishes it."""
    return pcg_hash_wp(pcg_hash_wp(pcg_hash_wp(seed_lo) ^ seed_hi) ^ ray)


@wp.func
def depth_key_wp(key: wp.uint32, depth: int) -> wp.uint32:
    """The hash of ``(seed, ray, depth)`` for ray key ``key``: what all of a bounce's numbers share (hoisted)."""
    return pcg_hash_wp(key ^ wp.uint32(depth))


@wp.func
def uniform_dim_wp(depth_key: wp.uint32, dim: int) -> float:
    """The number at dimension ``dim`` of the bounce whose :func:`depth_key_wp` is ``depth_key``."""
    h = pcg_hash_wp(depth_key ^ wp.uint32(dim))
    return float(h >> wp.uint32(8)) / 16777216.0


@wp.func
def uniform_counter_wp(key: wp.uint32, depth: int, dim: int) -> float:
    """The number of :func:`uniform_counter` at ``(depth, dim)`` of the ray whose :func:`ray_key_wp` is ``key``."""
    return uniform_dim_wp(depth_key_wp(key, depth), dim)


@wp.kernel
def _fill_uniform(offset: int, end: int, seed_lo: wp.uint32, seed_hi: wp.uint32, rays: wp.array(dtype=wp.int64),
                  depth: int, dims: int, out: wp.array2d(dtype=wp.float32)):
    """Row ``offset + tid`` of :func:`uniform_counter`."""
    i = offset + wp.tid()
    key = ray_key_wp(seed_lo, seed_hi, wp.uint32(rays[i]))
    for j in range(dims):
        out[i, j] = uniform_counter_wp(key, depth, j)
