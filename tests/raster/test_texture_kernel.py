"""The compiled float32 texture kernel (explicit backward) against the PyTorch path, every mode and wrap."""

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


def test_auto_backend_uses_kernel_for_float32_only():
    tex = torch.rand(4, 4, 1)
    uv = torch.rand(3, 3, 2)
    assert torch.equal(lg.texture(tex, uv), lg.texture(tex, uv, backend="kernel"))
    with pytest.raises(TypeError, match="backend='kernel'"):
        lg.texture(tex.double(), uv.double(), backend="kernel")


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
