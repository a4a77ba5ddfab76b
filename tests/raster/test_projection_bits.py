"""The visibility kernels' projection (``kernels.visibility.project``) gives the bits of
``cameras.projection.project_points``: faces drawn from it and faces clipped at the near plane (projected by
``project_points``) then share their edges exactly, so no pixel on such an edge is left uncovered."""

from __future__ import annotations

import pytest
import torch

from lumigrad.cameras.projection import project_points
from lumigrad.kernels.visibility import project


def _near_plane_points(device: str, n: int = 20000, near: float = 0.01) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    xy = (torch.rand(n, 2, generator=g, dtype=torch.float64) - 0.5) * 3.7
    # Depths straddling the near plane: a little before, on, and a little behind it, in awkward binary fractions.
    z = near * (1 + (torch.rand(n, generator=g, dtype=torch.float64) - 0.5) * 0.2)
    z[:64] = near
    return torch.cat([xy, z[:, None]], -1).to(device)[None]


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def test_projection_kernel_matches_project_points_bit_for_bit(device):
    pts = _near_plane_points(device)
    K = torch.tensor([[[517.31, 0.37, 255.87], [0.0, 519.93, 191.13], [0.0, 0.0, 1.0]]], dtype=torch.float64,
                     device=device)
    proj = project(pts, K, orthographic=False)
    expected = project_points(pts, K)
    assert torch.equal(proj[..., :2], expected) and torch.equal(proj[..., 2], pts[..., 2])
    ortho = project(pts, K, orthographic=True)
    assert torch.equal(ortho[..., :2], project_points(pts, K, projection="orthographic"))


def test_projection_module_is_compiled_without_fused_multiply_adds():
    from lumigrad.kernels.projection_kernels import project_vertices

    assert project_vertices.module.options["fuse_fp"] is False  # what keeps the CUDA build bit-identical too


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_projection_kernel_vertex_scale_is_pow2_scale_bit_for_bit(dtype):
    """The per-vertex powers of two made by the projection kernel (for the surface kernels) are those of
    ``pow2_scale`` (``frexp`` / ``ldexp``): zero, exact powers of two and their neighbours, subnormal float32,
    coordinates up to the rasterizer's 1e15 bound, random magnitudes."""
    from lumigrad.cameras.projection import pow2_scale

    tiny = torch.finfo(dtype).tiny
    special = torch.tensor([0.0, 1.0, 0.5, 2.0, 0.75, 3.0, 1024.0, 1e15, -1e15, 1e-30, tiny, tiny / 8, 2.0 ** -60],
                           dtype=torch.float64).to(dtype)
    powers = torch.ldexp(torch.ones(80, dtype=dtype), torch.arange(-40, 40))
    near_powers = torch.cat([powers, torch.nextafter(powers, torch.zeros_like(powers)),
                             torch.nextafter(powers, torch.full_like(powers, 1e30))])
    g = torch.Generator().manual_seed(3)
    rand = torch.ldexp(torch.rand(3000, generator=g, dtype=torch.float64) - 0.5,
                       torch.randint(-45, 45, (3000,), generator=g)).to(dtype)
    values = torch.cat([special, -near_powers, near_powers, rand])
    pad = (-values.numel()) % 3
    coords = torch.cat([values, torch.zeros(pad, dtype=dtype)]).reshape(1, -1, 3)
    coords = torch.cat([coords, coords.roll(1, -1), coords.roll(2, -1)], 1)  # each value in each slot
    coords[..., 2] = coords[..., 2].abs() + 1  # in front of the camera
    K = torch.eye(3, dtype=torch.float64)[None]
    _, scale = project(coords, K, orthographic=False, return_vertex_scale=True)
    assert torch.equal(scale, pow2_scale(coords.reshape(-1, 3).abs().amax(-1)).double())
