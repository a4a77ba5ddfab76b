"""The compiled texture kernels (float32 and float64, explicit backward) against the PyTorch twin, every mode and
wrap."""

import pytest
import torch

import lumigrad as lg


@pytest.mark.parametrize("filter", ["nearest", "bilinear", "trilinear"])
@pytest.mark.parametrize("wrap", ["repeat", "clamp", "mirror"])
@pytest.mark.parametrize("batched", [False, True])
def test_kernel_matches_torch_forward_and_backward(filter, wrap, batched):
    g = torch.Generator().manual_seed(hash((filter, wrap, batched)) % 1000)
    tex = torch.rand(2, 13, 9, 3, generator=g) if batched else torch.rand(13, 9, 3, generator=g)
    shape = (2, 5, 7) if batched else (5, 7)
    uv = torch.rand(shape + (2,), generator=g) * 3 - 1
    duv = torch.randn(shape + (2, 2), generator=g) * 0.3  # footprints from below level 0 to past the top
    mask = torch.rand(shape, generator=g) > 0.3
    cot = torch.rand(shape + (3,), generator=g)
    results = []
    for backend in ("kernel", "torch"):
        t, u, d = (x.clone().requires_grad_() for x in (tex, uv, duv))
        out = lg.texture(t, u, uv_derivs=d if filter == "trilinear" else None, filter=filter, wrap=wrap,
                         backend=backend, mask=mask)
        (out * cot).sum().backward()
        results.append((out.detach(), t.grad, u.grad, d.grad))
    (o_k, t_k, u_k, d_k), (o_t, t_t, u_t, d_t) = results
    torch.testing.assert_close(o_k, o_t, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(t_k, t_t, rtol=1e-5, atol=1e-6)
    assert (o_k[~mask] == 0).all()
    if filter == "nearest":
        assert u_k is None and u_t is None
    else:
        torch.testing.assert_close(u_k, u_t, rtol=1e-4, atol=1e-5)
        assert (u_k[~mask] == 0).all()
    if filter == "trilinear":
        torch.testing.assert_close(d_k, d_t, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("filter", ["nearest", "bilinear", "trilinear"])
@pytest.mark.parametrize("wrap", ["repeat", "clamp", "mirror"])
@pytest.mark.parametrize("batched", [False, True])
def test_float64_kernel_matches_the_torch_twin_to_1e12(filter, wrap, batched):
    g = torch.Generator().manual_seed(hash((filter, wrap, batched, 64)) % 1000)
    dt = torch.float64
    tex = torch.rand((2, 13, 9, 3) if batched else (13, 9, 3), generator=g, dtype=dt)
    shape = (2, 5, 7) if batched else (5, 7)
    uv = torch.rand(shape + (2,), generator=g, dtype=dt) * 3 - 1
    duv = torch.randn(shape + (2, 2), generator=g, dtype=dt) * 0.3
    mask = torch.rand(shape, generator=g) > 0.3
    cot = torch.rand(shape + (3,), generator=g, dtype=dt)
    results = []
    for backend in ("kernel", "torch"):
        t, u, d = (x.clone().requires_grad_() for x in (tex, uv, duv))
        out = lg.texture(t, u, uv_derivs=d if filter == "trilinear" else None, filter=filter, wrap=wrap,
                         backend=backend, mask=mask, lod_bias=0.25)
        assert out.dtype == dt
        (out * cot).sum().backward()
        results.append((out.detach(), t.grad, u.grad, d.grad))
    for k, t in zip(*results):
        if t is None:
            assert k is None
        else:
            torch.testing.assert_close(k, t, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("filter", ["bilinear", "trilinear"])
def test_float64_kernel_gradcheck(filter):
    g = torch.Generator().manual_seed(11)
    dt = torch.float64
    tex = torch.rand(5, 6, 2, generator=g, dtype=dt, requires_grad=True)
    # Away from texel-centre kinks and from integer levels of detail (both piecewise-linear seams).
    x = torch.tensor([0.3, 1.6, 2.4, 3.7, 4.45, 0.55], dtype=dt)  # texel coordinates, 0.2+ from integers
    y = torch.tensor([0.35, 1.7, 2.25, 3.6, 0.4, 1.45], dtype=dt)
    uv = torch.stack([(x + 0.5) / 6, (y + 0.5) / 5], -1).reshape(2, 3, 2).requires_grad_(True)
    duv = torch.zeros(2, 3, 2, 2, dtype=dt)
    duv[..., 0, 0] = 2 ** torch.tensor([0.3, 0.6, 1.2, 1.4, 0.8, 1.7], dtype=dt).reshape(2, 3) / 6
    duv[..., 1, 1] = 0.01
    duv.requires_grad_(True)
    inputs = (tex, uv, duv) if filter == "trilinear" else (tex, uv)

    def fn(t, u, d=None):
        return lg.texture(t, u, filter=filter, backend="kernel", **({"uv_derivs": d} if d is not None else {}))

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-7, atol=1e-9)


def test_auto_backend_uses_kernel_for_float32_and_float64():
    tex = torch.rand(4, 4, 1)
    uv = torch.rand(3, 3, 2)
    assert torch.equal(lg.texture(tex, uv), lg.texture(tex, uv, backend="kernel"))
    assert torch.equal(lg.texture(tex.double(), uv.double()), lg.texture(tex.double(), uv.double(), backend="kernel"))
    with pytest.raises(TypeError, match="backend='kernel'"):
        lg.texture(tex.double(), uv, backend="kernel")  # mixed dtypes: the torch path only
    with pytest.raises(TypeError, match="backend='kernel'"):
        lg.texture(tex.half(), uv.half(), backend="kernel")


def test_mask_shape_is_checked():
    with pytest.raises(ValueError, match="mask"):
        lg.texture(torch.rand(4, 4, 1), torch.rand(3, 3, 2), mask=torch.ones(2, 3, dtype=torch.bool))


def test_multithreaded_texel_gradient_matches_torch():
    # Enough samples that the CPU backward splits into per-thread gradient tables and sums them.
    g = torch.Generator().manual_seed(5)
    tex = torch.rand(64, 64, 3, generator=g)
    uv = torch.rand(256, 256, 2, generator=g)
    duv = torch.randn(256, 256, 2, 2, generator=g) * 0.02
    grads = []
    for backend in ("kernel", "torch"):
        t = tex.clone().requires_grad_()
        lg.texture(t, uv, uv_derivs=duv, backend=backend).sum().backward()
        grads.append(t.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_single_unmasked_sample_is_sampled(dtype):
    """One sample and no mask: the kernel once read its placeholder mask (one zero) as "skip every sample"."""
    tex = torch.tensor([[[0.0], [1.0]]], dtype=dtype)
    at = torch.tensor([[[0.0, 0.5]]], dtype=dtype)
    assert float(lg.texture(tex, at, filter="bilinear", wrap="repeat", backend="kernel")) == 0.5
