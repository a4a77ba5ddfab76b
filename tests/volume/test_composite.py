"""Volume compositing: the Warp kernel against its float64 twin, gradcheck, analytic cases, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from lumigrad.kernels.composite import composite_packed
from lumigrad.volume import (accumulate, composite, composite_ref, cull_terminated, normals_from_density_gradient,
                             ray_offsets, render_weights, stratified_samples)


def packed_case(counts, dtype=torch.float64, seed=0, sigma_scale=3.0, channels=3):
    """Random packed samples: contiguous intervals (with some gaps) per ray, ``counts`` samples per ray."""
    gen = torch.Generator().manual_seed(seed)
    counts = torch.as_tensor(counts)
    R = counts.shape[0]
    ray_indices = torch.repeat_interleave(torch.arange(R), counts)
    S = ray_indices.shape[0]
    sigmas = torch.rand(S, generator=gen, dtype=torch.float64) * sigma_scale
    values = torch.rand(S, channels, generator=gen, dtype=torch.float64)
    # 2S increasing points: sample i is [points[2i], points[2i + 1]]; most samples start where the previous
    # one ended (exactly), some after a gap
    points = torch.cumsum(torch.rand(2 * S, generator=gen, dtype=torch.float64) * 0.3 + 0.02, 0)
    starts, ends = points[0::2].clone(), points[1::2]
    contiguous = torch.rand(max(S - 1, 0), generator=gen) < 0.7
    starts[1:] = torch.where(contiguous, ends[:-1], starts[1:])
    cast = lambda x: x.to(dtype)  # noqa: E731
    return cast(sigmas), cast(values), cast(starts), cast(ends), ray_indices, R


def run_kernel(sigmas, values, starts, ends, ray_indices, R, eps):
    start, count = ray_offsets(ray_indices, R)
    return composite_packed(sigmas, values, starts, ends, start, count, eps)


def grads(outputs, inputs, cotangents):
    return torch.autograd.grad(outputs, inputs, cotangents, allow_unused=True)


COUNTS = [3, 0, 7, 1, 12, 0, 5, 40]


@pytest.mark.parametrize("eps", [0.0, 0.05])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_kernel_matches_twin_values_and_gradients(dtype, tol, eps):
    case = packed_case(COUNTS, dtype)
    sigmas, values, starts, ends, ray_indices, R = case
    inputs = [x.clone().requires_grad_() for x in (sigmas, values, starts, ends)]
    out_k = run_kernel(*inputs, ray_indices, R, eps)
    # the twin runs in float64 on the same (rounded) inputs
    inputs64 = [x.detach().double().requires_grad_() for x in inputs]
    out_r = composite_ref(*inputs64, ray_indices, R, eps)
    for k, r in zip(out_k, out_r):
        assert k.dtype == dtype
        torch.testing.assert_close(k.double(), r, rtol=tol, atol=tol)
    gen = torch.Generator().manual_seed(1)
    cot = [torch.randn(o.shape, generator=gen, dtype=torch.float64) for o in out_r]
    g_k = grads(out_k, inputs, [c.to(dtype) for c in cot])
    g_r = grads(out_r, inputs64, cot)
    for name, a, b in zip(("sigmas", "values", "t_starts", "t_ends"), g_k, g_r):
        a = a.double()
        scale = max(1.0, float(b.abs().max()))
        assert float((a - b).abs().max()) <= tol * scale, name
        cos = float((a.flatten() @ b.flatten()) / (a.norm() * b.norm()))
        assert cos > 1 - 1e-9, name
        assert float((a - b).norm() / b.norm()) < tol, name


def test_kernel_matches_twin_on_many_rays_float32():
    """Enough rays for the CPU launch to be split into ranges; long rays (256 samples), dense medium."""
    counts = torch.randint(0, 257, (6000,), generator=torch.Generator().manual_seed(3))
    sigmas, values, starts, ends, ray_indices, R = packed_case(counts, torch.float32, seed=4, sigma_scale=1.0)
    inputs = [x.clone().requires_grad_() for x in (sigmas, values, starts, ends)]
    out_k = run_kernel(*inputs, ray_indices, R, 0.0)
    inputs64 = [x.detach().double().requires_grad_() for x in inputs]
    out_r = composite_ref(*inputs64, ray_indices, R, 0.0)
    for k, r in zip(out_k, out_r):
        torch.testing.assert_close(k.double(), r, rtol=1e-5, atol=1e-5)
    cot = [torch.randn(o.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64) for o in out_r]
    g_k = grads(out_k, inputs, [c.float() for c in cot])
    g_r = grads(out_r, inputs64, cot)
    for a, b in zip(g_k, g_r):
        assert float((a.double() - b).norm() / b.norm()) < 1e-5


def test_gradcheck_kernel_and_twin():
    sigmas, values, starts, ends, ray_indices, R = packed_case([3, 0, 4, 1], torch.float64, seed=2, channels=2)
    inputs = tuple(x.clone().requires_grad_() for x in (sigmas, values, starts, ends))
    start, count = ray_offsets(ray_indices, R)
    assert torch.autograd.gradcheck(lambda *x: composite_packed(*x, start, count, 0.0), inputs)
    assert torch.autograd.gradcheck(lambda *x: composite_ref(*x, ray_indices, R, 0.0), inputs)


def test_gradcheck_public_composite_with_background():
    sigmas, values, starts, ends, ray_indices, R = packed_case([2, 3, 0], torch.float64, seed=6)
    background = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64, requires_grad=True)
    inputs = tuple(x.clone().requires_grad_() for x in (sigmas, values)) + (background,)

    def render(s, v, bg):
        out = composite(s, v, starts, ends, ray_indices, R, background=bg)
        return out.rgb, out.opacity, out.depth

    assert torch.autograd.gradcheck(render, inputs)


def test_homogeneous_slab_opacity_and_depth():
    """A slab of density sigma and length L: opacity 1 - exp(-sigma L) whatever the sampling; expected depth
    of an exponential distribution truncated to the slab."""
    sigma, L, t0 = 1.7, 2.0, 1.0
    near = torch.tensor([t0, t0, t0], dtype=torch.float64)
    far = near + L
    samples = stratified_samples(near, far, num_samples=37, generator=torch.Generator().manual_seed(0))
    S = samples.num_samples
    out = composite(torch.full((S,), sigma, dtype=torch.float64), torch.ones(S, 3, dtype=torch.float64),
                    samples.t_starts, samples.t_ends, samples.ray_indices, samples.num_rays)
    expected = 1 - math.exp(-sigma * L)
    torch.testing.assert_close(out.opacity, torch.full((3, 1), expected, dtype=torch.float64), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.rgb, torch.full((3, 3), expected, dtype=torch.float64), rtol=1e-12, atol=1e-12)
    # the midpoint depths are a quadrature of the exact mean depth
    # t0 + 1/sigma - L e^{-sigma L} / (1 - e^{-sigma L})
    exact = t0 + 1 / sigma - L * math.exp(-sigma * L) / expected
    assert abs(float(out.depth[0]) - exact) < 5e-3


def test_worked_example_ln2():
    ln2 = math.log(2.0)
    w, T = render_weights(torch.tensor([ln2, ln2]), torch.tensor([0.0, 1.0]), torch.tensor([1.0, 2.0]),
                          torch.tensor([0, 0]), 1)
    torch.testing.assert_close(w, torch.tensor([0.5, 0.25]))
    torch.testing.assert_close(T, torch.tensor([1.0, 0.5]))
    acc = accumulate(torch.tensor([[1.0], [3.0]]), w, torch.tensor([0, 0]), 1)
    torch.testing.assert_close(acc, torch.tensor([[1.25]]))
    # accumulate takes samples in any order
    unsorted = accumulate(torch.tensor([[1.0], [3.0], [2.0]]), torch.tensor([0.5, 0.25, 1.0]),
                          torch.tensor([1, 0, 1]), 3)
    torch.testing.assert_close(unsorted, torch.tensor([[0.75], [2.5], [0.0]]))


def test_single_opaque_sample_and_empty_volume():
    colour = torch.tensor([[0.3, 0.6, 0.1], [1.0, 1.0, 1.0]], dtype=torch.float64)
    starts = torch.tensor([1.0, 2.0], dtype=torch.float64)
    ends = torch.tensor([1.5, 3.0], dtype=torch.float64)
    idx = torch.tensor([0, 0])
    bg = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    opaque = composite(torch.tensor([1e4, 5.0], dtype=torch.float64), colour, starts, ends, idx, 2, background=bg,
                       return_weights=True)
    torch.testing.assert_close(opaque.rgb[0], colour[0])
    torch.testing.assert_close(opaque.opacity[0], torch.ones(1, dtype=torch.float64))
    torch.testing.assert_close(opaque.depth[0], torch.tensor([1.25], dtype=torch.float64))
    assert float(opaque.weights[1]) == 0.0
    # ray 1 has no samples: background only
    torch.testing.assert_close(opaque.rgb[1], bg)
    assert float(opaque.opacity[1]) == 0.0 and float(opaque.depth[1]) == 0.0
    empty = composite(torch.zeros(2, dtype=torch.float64), colour, starts, ends, idx, 2,
                      background=bg, return_weights=True)
    assert float(empty.weights.abs().max()) == 0.0
    torch.testing.assert_close(empty.rgb, bg.expand(2, 3))
    assert float(empty.depth.abs().max()) == 0.0
    sig = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    out = composite(sig, colour, starts, ends, idx, 2, background=bg)
    (g,) = torch.autograd.grad(out.rgb.sum() + out.depth.sum(), [sig])
    assert bool(torch.isfinite(g).all())  # no NaN from the depth normalisation of an empty ray


def test_packed_matches_padded():
    """The packed op equals a padded [R, max_samples] implementation (cumprod along rows, zero-padded)."""
    counts = [4, 1, 0, 6, 3]
    sigmas, values, starts, ends, ray_indices, R = packed_case(counts, torch.float64, seed=7)
    out = composite(sigmas, values, starts, ends, ray_indices, R, return_weights=True)
    N = max(counts)
    offsets, _ = ray_offsets(ray_indices, R)
    col = torch.arange(ray_indices.shape[0]) - offsets[ray_indices]
    pad = lambda x: torch.zeros((R, N) + x.shape[1:], dtype=x.dtype).index_put((ray_indices, col), x)  # noqa: E731
    sig_p, val_p, delta_p = pad(sigmas), pad(values), pad(ends - starts)
    mid_p = pad(0.5 * (starts + ends))
    alpha = 1 - torch.exp(-sig_p * delta_p)
    trans = torch.cumprod(torch.cat([torch.ones(R, 1, dtype=torch.float64), 1 - alpha[:, :-1]], 1), 1)
    w = trans * alpha
    torch.testing.assert_close(out.rgb, (w[..., None] * val_p).sum(1), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.opacity[:, 0], w.sum(1), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.accumulated_depth[:, 0], (w * mid_p).sum(1), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.weights, w[ray_indices, col], rtol=1e-12, atol=1e-12)


def test_early_termination_changes_nothing_beyond_eps():
    sigmas, values, starts, ends, ray_indices, R = packed_case([30, 50, 20, 64], torch.float64, seed=8,
                                                               sigma_scale=8.0)
    eps = 1e-3
    full = composite(sigmas, values, starts, ends, ray_indices, R, return_weights=True)
    cut = composite(sigmas, values, starts, ends, ray_indices, R, early_stop_eps=eps, return_weights=True)
    dead = full.transmittance < eps
    assert bool(dead.any()), "the case must terminate some rays early"
    assert float(cut.weights[dead].abs().max()) == 0.0
    torch.testing.assert_close(cut.weights[~dead], full.weights[~dead], rtol=0, atol=0)
    # the dropped weight is at most the transmittance where the ray stopped (< eps)
    assert float((full.opacity - cut.opacity).max()) < eps
    assert float((full.rgb - cut.rgb).abs().max()) < eps * float(values.abs().max())
    # culling the terminated samples before compositing gives the same image as the cut-off
    from lumigrad.volume import RaySamples
    samples = RaySamples(starts, ends, ray_indices, *ray_offsets(ray_indices, R))
    kept, keep = cull_terminated(samples, sigmas, eps)
    culled = composite(sigmas[keep], values[keep], kept.t_starts, kept.t_ends, kept.ray_indices, R)
    torch.testing.assert_close(culled.rgb, cut.rgb, rtol=1e-12, atol=1e-12)
    assert kept.num_samples < samples.num_samples


def test_half_precision_runs_through_float32_kernel():
    sigmas, values, starts, ends, ray_indices, R = packed_case([5, 3], torch.float32, seed=9)
    ref = composite(sigmas, values, starts, ends, ray_indices, R)
    half = composite(sigmas.half(), values.half(), starts.half(), ends.half(), ray_indices, R)
    assert half.rgb.dtype == torch.float16
    torch.testing.assert_close(half.rgb.float(), ref.rgb, rtol=1e-2, atol=1e-2)


def test_normals_accumulate_and_density_gradient():
    # density exp(-|x|^2): its gradient points inwards, so normals point outwards (x / |x|)
    x = torch.tensor([[1.0, 2.0, 2.0], [0.0, -3.0, 0.0]], dtype=torch.float64)
    grad = -2 * x * torch.exp(-(x * x).sum(-1, keepdim=True))
    n = normals_from_density_gradient(grad)
    torch.testing.assert_close(n, x / x.norm(dim=-1, keepdim=True))
    assert float(normals_from_density_gradient(torch.zeros(1, 3)).abs().max()) == 0.0
    sigmas, values, starts, ends, ray_indices, R = packed_case([4, 2], torch.float64, seed=10)
    normals = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand(sigmas.shape[0], 3)
    out = composite(sigmas, values, starts, ends, ray_indices, R, normals=normals)
    torch.testing.assert_close(out.normals, normals[:2])


def _good():
    return packed_case([2, 3], torch.float64, seed=11)


@pytest.mark.parametrize("mutate,match", [
    (lambda c: c.update(sigmas=c["sigmas"].clone().index_fill(0, torch.tensor([1]), float("nan"))), "sigmas"),
    (lambda c: c.update(sigmas=-c["sigmas"]), "sigmas must be non-negative"),
    (lambda c: c.update(t_ends=c["t_ends"][:-1]), "t_ends"),
    (lambda c: c.update(values=c["values"][:-1]), "values"),
    (lambda c: c.update(ray_indices=c["ray_indices"].flip(0)), "ray_indices must be sorted"),
    (lambda c: c.update(ray_indices=c["ray_indices"] + 5), r"ray_indices must lie in \[0, num_rays\)"),
    (lambda c: c.update(t_ends=c["t_starts"] - 0.01), "t_ends must be >= t_starts"),
    (lambda c: c.update(t_starts=c["t_starts"].flip(0), t_ends=c["t_ends"].flip(0)), "must not overlap"),
    (lambda c: c.update(early_stop_eps=1.0), "early_stop_eps"),
    (lambda c: c.update(num_rays=-1), "num_rays"),
    (lambda c: c.update(background=torch.zeros(4, dtype=torch.float64)), "background"),
    (lambda c: c.update(ray_indices=c["ray_indices"].float()), "ray_indices must have an integer dtype"),
])
def test_bad_input_names_the_argument(mutate, match):
    sigmas, values, starts, ends, ray_indices, R = _good()
    case = dict(sigmas=sigmas, rgbs=None, values=values, t_starts=starts, t_ends=ends, ray_indices=ray_indices,
                num_rays=R, early_stop_eps=0.0, background=None)
    mutate(case)
    with pytest.raises((ValueError, TypeError), match=match):
        composite(case["sigmas"], case["values"], case["t_starts"], case["t_ends"], case["ray_indices"],
                  case["num_rays"], background=case["background"], early_stop_eps=case["early_stop_eps"])


def test_render_weights_and_accumulate_refuse_bad_input():
    sigmas, values, starts, ends, ray_indices, R = _good()
    with pytest.raises(ValueError, match="ray_indices must have one entry per sample"):
        render_weights(sigmas, starts, ends, ray_indices[:-1], R)
    with pytest.raises(ValueError, match="values must have one row per sample"):
        accumulate(values[:-1], sigmas, ray_indices, R)


@pytest.mark.parametrize("workers", [1, 3])
def test_split_cpu_launches_give_identical_results(monkeypatch, workers):
    """Rays are independent: cutting the launch into ranges over several threads changes no bit."""
    from lumigrad.kernels import _runtime

    counts = torch.randint(0, 40, (9000,), generator=torch.Generator().manual_seed(12))
    sigmas, values, starts, ends, ray_indices, R = packed_case(counts, torch.float32, seed=13)
    inputs = [x.clone().requires_grad_() for x in (sigmas, values, starts, ends)]
    cot = [torch.randn(s, generator=torch.Generator().manual_seed(14)) for s in
           [(R, 3), (R,), (R,), (ray_indices.shape[0],), (ray_indices.shape[0],)]]
    monkeypatch.setattr(_runtime, "num_workers", lambda: 1)
    one = run_kernel(*inputs, ray_indices, R, 1e-3)
    g_one = grads(one, inputs, cot)
    monkeypatch.setattr(_runtime, "num_workers", lambda: workers)
    many = run_kernel(*inputs, ray_indices, R, 1e-3)
    g_many = grads(many, inputs, cot)
    for a, b in zip(one + g_one, many + g_many):
        assert torch.equal(a, b)


@pytest.mark.parametrize("inputs_needed,outputs_used", [
    ((0,), (0,)),          # d rgb / d sigma only: no weight / transmittance cotangents, no t or value gradients
    ((0, 1), (1, 2)),      # opacity and depth into sigmas and colours
    ((2, 3), (3,)),        # weights into the intervals
    ((0,), (4,)),          # transmittance alone
])
def test_partial_gradients_match_the_twin(inputs_needed, outputs_used):
    """The backward skips absent cotangents and unneeded gradients; what it returns stays exact."""
    sigmas, values, starts, ends, ray_indices, R = packed_case(COUNTS, torch.float64, seed=15)
    base = (sigmas, values, starts, ends)
    inputs = [x.clone().requires_grad_(k in inputs_needed) for k, x in enumerate(base)]
    inputs64 = [x.clone().requires_grad_(k in inputs_needed) for k, x in enumerate(base)]
    out_k = run_kernel(*inputs, ray_indices, R, 0.0)
    out_r = composite_ref(*inputs64, ray_indices, R, 0.0)
    gen = torch.Generator().manual_seed(16)
    def loss(outs):
        return sum((outs[k] * torch.randn(outs[k].shape, generator=gen, dtype=torch.float64)).sum()
                   for k in outputs_used)

    g_k = torch.autograd.grad(loss(out_k), [inputs[k] for k in inputs_needed])
    gen.manual_seed(16)
    g_r = torch.autograd.grad(loss(out_r), [inputs64[k] for k in inputs_needed], allow_unused=True)
    for a, b, k in zip(g_k, g_r, inputs_needed):
        b = torch.zeros_like(base[k]) if b is None else b  # e.g. opacity does not depend on the colours
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_all_opaque_volume_has_finite_gradients(dtype):
    """Every sample opaque (sigma delta ~ 1e9): the first sample takes all the weight, the rest none, and the
    gradients are finite (no 0 * inf from the vanished transmittance)."""
    sigmas, values, starts, ends, ray_indices, R = packed_case([4, 1, 6], dtype, seed=17)
    sigmas = torch.full_like(sigmas, 1e10).requires_grad_()
    values = values.clone().requires_grad_()
    out = composite(sigmas, values, starts, ends, ray_indices, R, return_weights=True)
    offsets, _ = ray_offsets(ray_indices, R)
    torch.testing.assert_close(out.opacity, torch.ones(R, 1, dtype=dtype))
    torch.testing.assert_close(out.rgb, values.detach()[offsets])
    first = torch.zeros(ray_indices.shape[0], dtype=torch.bool).index_fill(0, offsets, True)
    assert float(out.weights.detach()[~first].abs().max()) == 0.0
    loss = out.rgb.sum() + out.depth.sum() + out.weights.sum() + out.transmittance.sum()
    g_sigma, g_values = torch.autograd.grad(loss, [sigmas, values])
    assert bool(torch.isfinite(g_sigma).all()) and bool(torch.isfinite(g_values).all())
    ref = composite_ref(sigmas.detach().double(), values.detach().double(), starts.double(), ends.double(),
                        ray_indices, R)
    torch.testing.assert_close(out.rgb.double(), ref[0], rtol=1e-6, atol=1e-6)
