"""CUDA paths: the same ops on the GPU agree with the CPU (skipped without a CUDA device)."""

import pytest
import torch

import lumigrad as lg

pytestmark = pytest.mark.cuda


def _pipeline(mesh, verts, cam, tex):
    frags = lg.rasterize(verts, mesh.faces, cam, return_bary_derivs=True)
    uv, duv = lg.interpolate(mesh.uv, frags, mesh.uv_faces, return_derivatives=True)
    color = lg.texture(tex, uv, uv_derivs=duv, mask=frags.mask)
    return frags, lg.antialias(color, frags, verts, mesh.faces, cam)


def test_spot_pipeline_matches_cpu(spot):
    cam = lg.Camera.look_at([2.0, 0.5, 2.0], [0.0, 0.1, 0.0], fov_y=0.7, width=128, height=96)
    results = []
    for device in ("cpu", "cuda"):
        # fresh leaves on each device: never set requires_grad on the shared fixture's own tensors
        verts = spot.verts.detach().to(device, copy=True).requires_grad_(True)
        tex = spot.texture[..., :3].detach().to(device, copy=True).requires_grad_(True)
        mesh = spot.to(device)
        frags, image = _pipeline(mesh, verts, cam.to(device), tex)
        image.mean().backward()
        results.append((frags.face_ids.cpu(), image.detach().cpu(), verts.grad.cpu(), tex.grad.cpu()))
    (ids_c, img_c, gv_c, gt_c), (ids_g, img_g, gv_g, gt_g) = results
    assert (ids_c != ids_g).float().mean() < 1e-3
    assert (img_c - img_g).abs().mean() < 1e-4
    cos = torch.nn.functional.cosine_similarity(gv_c.reshape(-1), gv_g.reshape(-1), dim=0)
    assert cos > 0.999
    torch.testing.assert_close(gt_g, gt_c, rtol=1e-3, atol=1e-6)


def test_depth_peel_and_batched_views_on_cuda(spot):
    eyes = torch.tensor([[2.0, 0.5, 2.0], [-2.0, 0.3, 1.0]])
    cams = lg.Camera.look_at(eyes, torch.zeros(2, 3), torch.tensor([0.0, 1.0, 0.0]), width=64, height=64)
    cpu = lg.depth_peel(spot.verts, spot.faces, cams, 2)
    gpu = lg.depth_peel(spot.verts.cuda(), spot.faces.cuda(), cams.to("cuda"), 2)
    for a, b in zip(cpu, gpu):
        assert (a.face_ids != b.face_ids.cpu()).float().mean() < 1e-3
