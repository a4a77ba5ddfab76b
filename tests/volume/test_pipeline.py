"""The volume ops end to end: camera rays -> box clipping -> stratified samples -> densities -> composite."""

from __future__ import annotations

import pytest
import torch

from lumigrad.volume import camera_rays, composite, ray_aabb, stratified_samples

from ..conftest import camera_at


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_homogeneous_ball_renders_its_analytic_opacity(dtype):
    """A ball of radius 1 and density sigma seen by a 16 x 16 camera: each pixel's opacity is
    1 - exp(-sigma * chord) within one sample interval's worth of density (midpoint rule at the boundary);
    pixels whose rays miss the bounding box have no samples and show the background."""
    sigma, radius = 2.0, 1.0
    cam = camera_at((0.4, 0.3, -3.0), size=(16, 16), fov_y=0.9, dtype=dtype)
    rays = camera_rays(cam)
    o, d = rays.origins.reshape(-1, 3), rays.directions.reshape(-1, 3)
    box = torch.tensor([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0], dtype=dtype)
    t_near, t_far, hit = ray_aabb(o, d, box)
    samples = stratified_samples(t_near, t_far, hit=hit, num_samples=256, jitter=False)
    assert int(samples.counts[~hit].sum()) == 0 and bool((samples.counts[hit] == 256).all())
    p = samples.positions(o, d)
    sigmas = torch.where(p.norm(dim=-1) < radius, sigma, 0.0).to(dtype)
    bg = torch.tensor([0.0, 0.0, 1.0], dtype=dtype)
    out = composite(sigmas, torch.ones(samples.num_samples, 3, dtype=dtype), samples.t_starts, samples.t_ends,
                    samples.ray_indices, samples.num_rays, background=bg)
    # analytic chord of each (unit-direction) ray through the ball
    b = (o * d).sum(-1)
    disc = b * b - ((o * o).sum(-1) - radius ** 2)
    chord = 2 * torch.sqrt(disc.clamp_min(0))
    exact = 1 - torch.exp(-sigma * chord)
    step = ((t_far - t_near) / 256).max()
    assert float((out.opacity[:, 0] - exact).abs().max()) <= float(sigma * step) + 1e-6
    assert int((exact > 0.5).sum()) > 20  # the ball covers a good part of the image
    torch.testing.assert_close(out.rgb[~hit], bg.expand(int((~hit).sum()), 3))
    # expected depth of the opaque centre lies inside the ball's front half
    centre = exact.argmax()
    front = -b[centre] - torch.sqrt(disc[centre])
    assert float(front) <= float(out.depth[centre, 0]) <= float(-b[centre])


@pytest.mark.cuda
def test_kernel_on_cuda_matches_cpu():
    from .test_composite import packed_case, run_kernel

    sigmas, values, starts, ends, ray_indices, R = packed_case([3, 0, 70, 5], torch.float32, seed=20)
    inputs = [x.clone().requires_grad_() for x in (sigmas, values, starts, ends)]
    inputs_gpu = [x.detach().cuda().requires_grad_() for x in inputs]
    cpu = run_kernel(*inputs, ray_indices, R, 0.0)
    gpu = run_kernel(*inputs_gpu, ray_indices.cuda(), R, 0.0)
    for a, b in zip(cpu, gpu):
        torch.testing.assert_close(b.cpu(), a, rtol=1e-6, atol=1e-6)
    cot = [torch.randn(o.shape) for o in cpu]
    g_cpu = torch.autograd.grad(cpu, inputs, cot)
    g_gpu = torch.autograd.grad(gpu, inputs_gpu, [c.cuda() for c in cot])
    for a, b in zip(g_cpu, g_gpu):
        torch.testing.assert_close(b.cpu(), a, rtol=1e-5, atol=1e-5)
