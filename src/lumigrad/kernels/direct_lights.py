"""Autograd glue for the fused direct-lighting kernels (``direct_lights_kernels``): all point and directional
lights of a shading point in one pass, an explicit backward that recomputes each light's terms, so memory is
O(points) whatever the number of lights. Inputs are checked by :func:`lumigrad.shading.shade_punctual`."""

from __future__ import annotations

import torch
import warp as wp

from . import direct_lights_kernels as dk
from ._runtime import as_warp, ensure_init, launch, launch_partitioned, launch_split, num_workers

#: dtypes the kernels are compiled for.
KERNEL_DTYPES = (torch.float32, torch.float64)
#: Most colour channels the kernels take.
MAX_CHANNELS = dk.MAX_CHANNELS

_MIN_POINTS_PER_THREAD = 1024
#: Shading points per slot of the light-gradient buffer on CUDA (atomics contend within one slot only).
_CUDA_GROUP = 256


class _DirectLights(torch.autograd.Function):
    @staticmethod
    def forward(ctx, position, normal, wo, base_color, roughness, metallic, f0, light_vector, light_is_point,
                light_radiance, min_distance):
        ensure_init()
        P, C = base_color.shape
        out = torch.empty(P, C, dtype=base_color.dtype, device=base_color.device)
        args = _inputs(position, normal, wo, base_color, roughness, metallic, f0, light_vector, light_is_point,
                       light_radiance, min_distance)
        launch_split(dk.direct_lights_forward, P, args + [as_warp(out)], position.device,
                     min_chunk=_MIN_POINTS_PER_THREAD)
        ctx.save_for_backward(position, normal, wo, base_color, roughness, metallic, f0, light_vector,
                              light_is_point, light_radiance)
        ctx.min_distance = min_distance
        return out

    @staticmethod
    def backward(ctx, v_out):
        saved = ctx.saved_tensors
        position, normal, wo, base_color, roughness, metallic, f0, light_vector, light_is_point, light_radiance = saved
        P, C = base_color.shape
        K = light_vector.shape[0]
        dev = position.device
        grads = [torch.empty_like(t) for t in (position, normal, wo, base_color, roughness, metallic, f0)]
        args = _inputs(*saved, ctx.min_distance) + [as_warp(v_out.to(position.dtype).contiguous())]
        args += [as_warp(g) for g in grads[:4]] + [as_warp(grads[4].view(-1)), as_warp(grads[5].view(-1)),
                                                  as_warp(grads[6])]
        if dev.type == "cuda":
            slots = light_vector.new_zeros((P + _CUDA_GROUP - 1) // _CUDA_GROUP, K, 3 + C, dtype=torch.float64)
            launch(dk.direct_lights_backward, P, [0, P, *args, as_warp(slots), _CUDA_GROUP], dev)
        else:  # one private slot per thread: no atomics across threads
            parts = max(1, min(num_workers(), P // _MIN_POINTS_PER_THREAD))
            slots = light_vector.new_zeros(parts, K, 3 + C, dtype=torch.float64)
            launch_partitioned(dk.direct_lights_backward, P, lambda k: [*args, as_warp(slots[k:k + 1]), P + 1],
                               parts, dev)
        v_light = slots.sum(0).to(light_vector.dtype)
        return (*grads, v_light[:, :3].contiguous(), None, v_light[:, 3:].contiguous(), None)


def _inputs(position, normal, wo, base_color, roughness, metallic, f0, light_vector, light_is_point,
            light_radiance, min_distance) -> list:
    return [as_warp(position), as_warp(normal), as_warp(wo), as_warp(base_color), as_warp(roughness.view(-1)),
            as_warp(metallic.view(-1)), as_warp(f0), int(base_color.shape[1]), as_warp(light_vector),
            as_warp(light_is_point), as_warp(light_radiance), int(light_vector.shape[0]),
            wp.float64(float(min_distance) ** 2)]


def direct_lights(position: torch.Tensor, normal: torch.Tensor, wo: torch.Tensor, base_color: torch.Tensor,
                  roughness: torch.Tensor, metallic: torch.Tensor, f0: torch.Tensor, light_vector: torch.Tensor,
                  light_is_point: torch.Tensor, light_radiance: torch.Tensor, min_distance: float) -> torch.Tensor:
    """Radiance ``[P, C]`` reflected towards ``wo`` from ``K`` point / directional lights (no shadows).

    Args:
        position: ``[P, 3]`` shading points, world space.
        normal: ``[P, 3]`` normals, normalised here (``normal / max(|normal|, 1e-12)``).
        wo: ``[P, 3]`` non-zero directions towards the viewer, normalised here.
        base_color: ``[P, C]`` glTF base colour, ``C <= MAX_CHANNELS``.
        roughness, metallic: ``[P, 1]``.
        f0: ``[P, C]`` dielectric normal-incidence reflectance (from ``ior`` or ``specular_f0``).
        light_vector: ``[K, 3]`` a point light's position, or the non-zero direction a directional light
            travels along.
        light_is_point: ``[K]`` int32, 1 for point lights, 0 for directional ones.
        light_radiance: ``[K, C]`` point lights' intensity, directional lights' irradiance.
        min_distance: lower clamp on the point-to-light distance (:data:`lumigrad.shading.MIN_LIGHT_DISTANCE`).

    All float tensors share one dtype of :data:`KERNEL_DTYPES` and one device, and are contiguous. The formula
    is in :mod:`lumigrad.kernels.direct_lights_kernels`.

    **Differentiability:** w.r.t. every float input (``light_is_point`` is an index); the horizon and the
    clamps give zero gradients as in :mod:`lumigrad.shading.brdf`. Memory of the backward: the inputs and
    ``[threads or P / 256, K, 3 + C]`` partial light gradients, never ``[P, K]``.
    """
    return _DirectLights.apply(position, normal, wo, base_color, roughness, metallic, f0, light_vector,
                               light_is_point, light_radiance, min_distance)
