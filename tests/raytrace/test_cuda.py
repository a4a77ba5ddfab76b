"""The BVH and the ray queries on CUDA agree with the CPU (skipped without a CUDA device)."""

from __future__ import annotations

import pytest
import torch

from lumigrad.kernels.bvh import TriangleBVH, bvh_cache_info, bvh_for, clear_bvh_cache
from lumigrad.raytrace import offset_ray_origin, trace_closest, trace_occluded

from .scenes import rays_at, triangle_soup

pytestmark = pytest.mark.cuda


def test_cuda_queries_agree_with_the_cpu_and_gradients_flow():
    verts, faces = triangle_soup(300, seed=40)
    o, d = rays_at(verts, faces, 5000, seed=41)
    cpu = trace_closest(verts, faces, o, d)
    v = verts.cuda().requires_grad_(True)
    gpu = trace_closest(v, faces.cuda(), o.cuda(), d.cuda())
    same = gpu.face.cpu() == cpu.face
    assert float(same.double().mean()) > 0.995
    h = same & cpu.hit
    assert torch.allclose(gpu.t.cpu()[h], cpu.t[h], atol=1e-9)
    assert torch.allclose(gpu.bary.cpu()[h], cpu.bary[h], atol=1e-9)
    gpu.t[gpu.hit].sum().backward()
    assert v.grad is not None and bool(torch.isfinite(v.grad).all()) and v.grad.abs().sum() > 0
    limit = torch.full((5000,), 2.5, dtype=torch.float64)
    occ = trace_occluded(verts.cuda(), faces.cuda(), o.cuda(), d.cuda(), limit.cuda()).cpu()
    assert float((occ == trace_occluded(verts, faces, o, d, limit)).double().mean()) > 0.995


def test_cuda_refit_and_cache():
    clear_bvh_cache()
    verts, faces = triangle_soup(200, seed=42)
    o, d = rays_at(verts, faces, 2000, seed=43)
    vc, fc = verts.cuda(), faces.cuda()
    bvh = bvh_for(vc, fc)
    moved = vc + 0.1
    assert bvh_for(moved, fc) is bvh and bvh.refit_count == 1 and bvh_cache_info()["builds"] == 1
    face, t, _ = bvh.closest_hit(o.cuda(), d.cuda())
    ref_face, ref_t, _ = TriangleBVH(verts + 0.1, faces).closest_hit(o, d)
    assert float((face.cpu() == ref_face).double().mean()) > 0.995
    clear_bvh_cache()


def test_cuda_mixed_devices_and_offsets():
    verts, faces = triangle_soup(10, seed=44)
    o, d = rays_at(verts, faces, 10, seed=45)
    with pytest.raises(ValueError, match="origins is on cuda"):
        trace_closest(verts, faces, o.cuda(), d.cuda())
    p, n = o.float(), d.float()
    assert torch.equal(offset_ray_origin(p.cuda(), n.cuda(), d.cuda()).cpu(), offset_ray_origin(p, n, d))
