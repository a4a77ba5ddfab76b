"""Small ray-tracing scenes: random triangle soups and rays aimed at them."""

from __future__ import annotations

import torch


def triangle_soup(num_faces: int, seed: int = 0, size: float = 0.4, dtype=torch.float64):
    """``num_faces`` independent random triangles of about ``size`` in ``[-1, 1]^3`` (overlapping, intersecting,
    unrelated windings): ``(verts [3F, 3], faces [F, 3])``."""
    g = torch.Generator().manual_seed(seed)
    centre = torch.rand(num_faces, 1, 3, generator=g, dtype=dtype) * 2 - 1
    tri = centre + size * (torch.rand(num_faces, 3, 3, generator=g, dtype=dtype) - 0.5)
    return tri.reshape(-1, 3), torch.arange(3 * num_faces).reshape(num_faces, 3)


def rays_at(verts: torch.Tensor, faces: torch.Tensor, num_rays: int, seed: int = 1, spread: float = 0.05):
    """Rays from a sphere of radius 3 towards random points on random faces moved by ``spread`` (most hit
    something, some pass beside), directions of random lengths in [0.5, 2]: ``(origins [R, 3], directions [R, 3])``."""
    g = torch.Generator().manual_seed(seed)
    o = torch.randn(num_rays, 3, generator=g, dtype=verts.dtype)
    o = 3 * o / o.norm(dim=-1, keepdim=True)
    pick = faces[torch.randint(0, faces.shape[0], (num_rays,), generator=g)]
    w = -torch.rand(num_rays, 3, generator=g, dtype=verts.dtype).log()
    target = ((w / w.sum(-1, keepdim=True))[:, :, None] * verts[pick]).sum(1)
    d = target + spread * torch.randn(num_rays, 3, generator=g, dtype=verts.dtype) - o
    d = d / d.norm(dim=-1, keepdim=True) * (0.5 + 1.5 * torch.rand(num_rays, 1, generator=g, dtype=verts.dtype))
    return o, d
