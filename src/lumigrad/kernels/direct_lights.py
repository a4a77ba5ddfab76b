"""Autograd glue for the fused direct-lighting kernels (``direct_lights_kernels``): all directional, point and
spot lights of a shading point in one pass, an explicit backward that recomputes each light's terms, so memory is
O(points) whatever the number of lights. Inputs are checked by :func:`lumigrad.shading.shade_punctual`."""

from __future__ import annotations

import warnings
from typing import Callable, NamedTuple, Optional

import torch
import warp as wp

from . import direct_lights_kernels as dk
from ._runtime import as_warp, ensure_init, launch, launch_partitioned, launch_split, num_workers

#: dtypes the kernels are compiled for.
KERNEL_DTYPES = (torch.float32, torch.float64)
#: Most colour channels the kernels take.
MAX_CHANNELS = dk.MAX_CHANNELS

_MIN_POINTS_PER_THREAD = 1024


class SpotCones(NamedTuple):
    """The cones of the spot lights among ``K`` lights, as :func:`lumigrad.shading.spot_light` defines them:
    ``a = clamp(cd * scale + offset, 0, 1)^2`` with ``cd`` the cosine between ``axis`` and the light-to-point
    direction.

    Attributes:
        is_spot: ``[K]`` bool, True for spot lights (the other fields are ignored elsewhere).
        axis: ``[K, 3]`` the direction each spot shines along, any non-zero length (normalised here).
        scale, offset: ``[K]`` from the cone's angles (:func:`lumigrad.shading.lights.spot_cone`).
    """

    is_spot: torch.Tensor
    axis: torch.Tensor
    scale: torch.Tensor
    offset: torch.Tensor


#: Per device type, whether the backward sums a point's per-light terms lane by lane in a scratch row
#: (``direct_lights_kernels.backward_kernel``'s ``packed``: what lets LLVM pack the CPU's lanes).
PACKED_LANES = {"cpu": True, "cuda": False}
#: Per device type, whether the point-light backward runs its full blocks as explicit SIMD (native C++ with clang
#: vector types, :mod:`lumigrad.kernels.direct_lights_native`; NVRTC has no such types).
NATIVE_LANES = {"cpu": True, "cuda": False}
#: The native kernels that have compiled and run once in this process.
_native_built: set = set()

#: Shading points per slot of the light-gradient buffer on CUDA (atomics contend within one slot only).
_CUDA_GROUP = 256


class _DirectLights(torch.autograd.Function):
    @staticmethod
    def forward(ctx, position, normal, wo, base_color, roughness, metallic, f0, specular, light_vector,
                light_is_point, light_radiance, light_shape, light_axis, min_distance, point_only):
        ensure_init()
        P, C = base_color.shape
        weighted = specular is not None
        out = torch.empty(P, MAX_CHANNELS, dtype=base_color.dtype, device=base_color.device)
        table = _light_table(light_vector, light_is_point, light_radiance, light_shape, light_axis)
        K = light_vector.shape[0]
        args, lanes = _inputs(position, normal, wo, base_color, roughness, metallic, f0, specular, table, K,
                              min_distance)
        _launch_lanes(lambda native: dk.forward_kernel(point_only, C, native, weighted),
                      lambda kernel: launch_split(kernel, P, args + [as_warp(out), lanes], position.device,
                                                  min_chunk=_MIN_POINTS_PER_THREAD), position.device.type)
        ctx.save_for_backward(position, normal, wo, base_color, roughness, metallic, f0, specular, table)
        ctx.num_lights = K
        ctx.min_distance = min_distance
        ctx.point_only = point_only
        return out[:, :C]

    @staticmethod
    def backward(ctx, v_out):
        saved = ctx.saved_tensors
        position, normal, wo, base_color, roughness, metallic, f0, specular, table = saved
        P, C = base_color.shape
        K = ctx.num_lights
        dev = position.device
        weighted = specular is not None
        grads = [torch.empty_like(t) for t in (position, normal, wo, base_color, roughness, metallic, f0)]
        # v_specular: written only by the weighted kernels (else a stand-in the kernel does not touch)
        grads.append(torch.empty_like(specular) if weighted else grads[5])
        args, lanes = _inputs(*saved, K, ctx.min_distance)
        args += [as_warp(v_out.to(position.dtype).contiguous())]
        args += [as_warp(g) for g in grads[:4]] + [as_warp(grads[4].view(-1)), as_warp(grads[5].view(-1)),
                                                  as_warp(grads[6]), as_warp(grads[7].view(-1))]
        need = ctx.needs_input_grad
        # the point gradients, the light gradients, the lights' axis and shape rows: each left out of the
        # kernel (not generated) when nothing asks for it
        need_point = any(need[:8])
        want_light = any(need[8:13])
        make = lambda native: dk.backward_kernel(ctx.point_only, C, need_point, want_light,  # noqa: E731
                                                 need[11] or need[12], PACKED_LANES[dev.type], native, weighted)
        # v_light[slot, row, block] holds a block's LANES lights side by side; scratch[row] a point's per-lane
        # gradient terms (one row per CPU thread; not read on CUDA)
        blocks = (K + dk.LANES - 1) // dk.LANES
        if dev.type == "cuda":
            slots = table.new_zeros((P + _CUDA_GROUP - 1) // _CUDA_GROUP, dk.ROWS, blocks, dk.LANES)
            scratch = table.new_empty(1, dk.POINT_ROWS, dk.LANES)
            launch(make(False), P, [0, P, *args, as_warp(slots, wp.vec4d), _CUDA_GROUP, as_warp(scratch, wp.vec4d),
                                    lanes], dev)
        else:  # one private slot per thread: no atomics across threads
            parts = max(1, min(num_workers(), P // _MIN_POINTS_PER_THREAD))
            slots = table.new_zeros(parts, dk.ROWS, blocks, dk.LANES)
            scratch = table.new_empty(parts, dk.POINT_ROWS, dk.LANES)
            part_inputs = lambda k: [*args, as_warp(slots[k:k + 1], wp.vec4d), P + 1,  # noqa: E731
                                     as_warp(scratch[k:k + 1], wp.vec4d), lanes]
            _launch_lanes(make, lambda kernel: launch_partitioned(kernel, P, part_inputs, parts, dev), dev.type)
        v_light = slots.sum(0).flatten(1)[:, :K].T
        point = [g if n else None for g, n in zip(grads, need[:8])]
        light = [v_light[:, dk.VECTOR:dk.VECTOR + 3], None, v_light[:, dk.RADIANCE:],
                 v_light[:, dk.SHAPE:dk.SHAPE + 3], v_light[:, dk.AXIS:dk.AXIS + 3]]
        return (*point, *[g if n else None for g, n in zip(light, need[8:13])], None, None)


def _launch_lanes(make: Callable, run: Callable, device_type: str) -> None:
    """``run(make(native))`` with the native SIMD kernel where :data:`NATIVE_LANES` allows it. The native C++ relies
    on the clang of Warp's CPU back end (vector types, ``__builtin_elementwise_*``); should a Warp version's
    compiler refuse it, its first launch fails while building (before the kernel writes anything), and the
    Warp-language lanes run instead, with a warning, for the rest of the process."""
    if not NATIVE_LANES[device_type]:
        run(make(False))
        return
    kernel = make(True)
    if kernel in _native_built or kernel is make(False):  # known to build, or no native code in this case (the
        # kernel factories decide: the same kernel with or without `native`)
        run(kernel)
        return
    try:
        run(kernel)
    except Exception as error:  # noqa: BLE001 - a build failure; anything else fails again below and is raised
        run(make(False))
        NATIVE_LANES[device_type] = False
        warnings.warn(f"lumigrad: the native SIMD point-light kernel did not build on this Warp ({wp.__version__}): "
                      f"{error}; using the Warp-language lanes (same results, slower)", RuntimeWarning, stacklevel=3)
        return
    _native_built.add(kernel)


def _light_table(light_vector, light_is_point, light_radiance, light_shape, light_axis) -> torch.Tensor:
    """The light table ``[ROWS, blocks * LANES]`` float64 (one column per light, padded with zeros to whole
    blocks; rows :data:`~lumigrad.kernels.direct_lights_kernels.VECTOR` ...), built once by the forward and kept
    for the backward."""
    K = light_vector.shape[0]
    table = light_vector.new_zeros(dk.ROWS, max(1, (K + dk.LANES - 1) // dk.LANES) * dk.LANES)
    for row, part in ((dk.VECTOR, light_vector), (dk.AXIS, light_axis), (dk.SHAPE, light_shape),
                      (dk.RADIANCE, light_radiance)):
        table[row:row + part.shape[1], :K] = part.T
    table[dk.PT, :K] = light_is_point
    return table


def _inputs(position, normal, wo, base_color, roughness, metallic, f0, specular, table, num_lights,
            min_distance) -> tuple[list, wp.array]:
    """The kernels' common arguments, and the light table as ``vec4d`` lanes (``[ROWS, blocks]``: a block's
    :data:`LANES` lights side by side, one load a row)."""
    lanes = as_warp(table.view(dk.ROWS, -1, dk.LANES), wp.vec4d)
    return [as_warp(position), as_warp(normal), as_warp(wo), as_warp(base_color), as_warp(roughness.view(-1)),
            as_warp(metallic.view(-1)), as_warp(f0),
            as_warp((metallic if specular is None else specular).view(-1)),  # metallic: a stand-in, not read
            as_warp(table), int(num_lights),
            wp.float64(float(min_distance) ** 2), wp.float64(1.0 / float(min_distance))], lanes


def direct_lights(position: torch.Tensor, normal: torch.Tensor, wo: torch.Tensor, base_color: torch.Tensor,
                  roughness: torch.Tensor, metallic: torch.Tensor, f0: torch.Tensor, light_vector: torch.Tensor,
                  light_is_point: torch.Tensor, light_radiance: torch.Tensor, min_distance: float, *,
                  light_inv_range: Optional[torch.Tensor] = None, spot: Optional[SpotCones] = None,
                  points_only: Optional[bool] = None, specular: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Radiance ``[P, C]`` reflected towards ``wo`` from ``K`` directional, point and spot lights (no shadows).

    Args:
        position: ``[P, 3]`` shading points, world space.
        normal: ``[P, 3]`` normals, normalised here (``normal / max(|normal|, 1e-12)``).
        wo: ``[P, 3]`` non-zero directions towards the viewer, normalised here.
        base_color: ``[P, C]`` glTF base colour, ``C <= MAX_CHANNELS``.
        roughness, metallic: ``[P, 1]``.
        f0: ``[P, C]`` dielectric normal-incidence reflectance (from ``ior`` or ``specular_f0``), already times
            ``specular`` where that is given.
        light_vector: ``[K, 3]`` a point or spot light's position, or the non-zero direction a directional
            light travels along.
        light_is_point: ``[K]`` int32 or bool, 1 for point and spot lights, 0 for directional ones.
        light_radiance: ``[K, C]`` point and spot lights' intensity, directional lights' irradiance.
        min_distance: lower clamp on the point-to-light distance (:data:`lumigrad.shading.MIN_LIGHT_DISTANCE`).
        light_inv_range: ``[K]`` ``1 / range`` of the glTF range window ``clamp(1 - (d / range)^4, 0, 1)``,
            0 for no range (directional lights ignore it); None: no light has a range.
        spot: the cones of the spot lights (:class:`SpotCones`), None when there is none.
        points_only: ``bool(light_is_point.all())`` if the caller knows it on the host (no device read);
            None: read from ``light_is_point`` (one host sync on CUDA) when it matters.
        specular: ``[P, 1]`` the dielectric's specular weight ``s`` (``KHR_materials_specular``) in [0, 1], or
            None (1: kernels without its terms). With ``f0`` already ``s f0``, the kernels add the rest of its
            effect (the diffuse's ``e m5`` and the Schlick Fresnel's grazing value ``f90``, see
            :mod:`lumigrad.kernels.direct_lights_kernels`) and give its gradient.

    The point tensors share one dtype of :data:`KERNEL_DTYPES`, all tensors one device, and are contiguous; the
    light tensors may be any float dtype (they are taken in float64). The formula
    is in :mod:`lumigrad.kernels.direct_lights_kernels`; directions and the cone's axes are normalised here (in
    PyTorch, on ``[K, 3]``).

    **Differentiability:** w.r.t. every float input (``light_is_point`` and ``spot.is_spot`` are indices); the
    horizon, the clamps, the range window's and the cone's ends give zero gradients as in
    :mod:`lumigrad.shading.brdf` and :mod:`lumigrad.shading.lights`. Memory of the backward: the inputs and
    ``[threads or P / 256, 14, K]`` partial light gradients and on the CPU ``[threads, POINT_ROWS, 4]`` per-lane point
    terms, never ``[P, K]``.
    """
    is_point = light_is_point.to(torch.bool)
    # The light tables are float64 whatever the points' dtype: K rows, and a float32 direction would carry its
    # rounding into every sharp highlight.
    vector64, radiance64 = light_vector.double(), light_radiance.double()
    ones = vector64.new_ones(vector64.shape[0])
    zeros = vector64.new_zeros(vector64.shape[0])
    norm = torch.where(is_point, ones, torch.linalg.vector_norm(vector64, dim=-1))
    vector = torch.where(is_point[:, None], vector64, -vector64 / norm[:, None])
    inv_range = zeros if light_inv_range is None else torch.where(is_point, light_inv_range.double(), zeros)
    if spot is None:
        shape = torch.stack([inv_range, zeros, ones], -1)  # no cone: a = clamp(0 cd + 1, 0, 1)^2 = 1
        axis = torch.zeros_like(vector64)
    else:
        on = spot.is_spot.to(torch.bool) & is_point
        axis64 = spot.axis.double()
        axis_norm = torch.where(on, torch.linalg.vector_norm(axis64, dim=-1), ones)
        axis = torch.where(on[:, None], axis64 / axis_norm[:, None], torch.zeros_like(axis64))
        shape = torch.stack([inv_range, torch.where(on, spot.scale.double(), zeros),
                             torch.where(on, spot.offset.double(), ones)], -1)
    # the kernels read MAX_CHANNELS radiance rows: the radiance's extra columns are zeros
    radiance64 = torch.nn.functional.pad(radiance64, (0, MAX_CHANNELS - radiance64.shape[1]))
    # point lights without range or cone (the common case) run kernels without those terms
    point_only = spot is None and light_inv_range is None and (
        bool(is_point.all()) if points_only is None else points_only)
    return _DirectLights.apply(position, normal, wo, base_color, roughness, metallic, f0,
                               None if specular is None else specular.contiguous(), vector.contiguous(),
                               is_point.to(vector64.dtype), radiance64.contiguous(), shape.contiguous(),
                               axis.contiguous(), min_distance, point_only)
