"""The record the texture forward keeps for its backward: sized by the filter and by the gradients wanted, and the
gradients replayed from each size equal the PyTorch twin's."""

import pytest
import torch

import lumigrad as lg
import lumigrad.kernels.texture as kernel_texture
from lumigrad.kernels import buffer_pool
from lumigrad.kernels.texture import record_bytes

WANTS = {"uv": (False, True), "tex": (True, False), "both": (True, True)}


def _inputs(dtype, seed, batched=False):
    g = torch.Generator().manual_seed(seed)
    tex = torch.rand((2, 13, 9, 3) if batched else (13, 9, 3), generator=g, dtype=dtype)
    shape = (2, 5, 7) if batched else (5, 7)
    uv = torch.rand(shape + (2,), generator=g, dtype=dtype) * 3 - 1
    duv = torch.randn(shape + (2, 2), generator=g, dtype=dtype) * 0.3  # levels below 0 to past the top
    mask = torch.rand(shape, generator=g) > 0.3
    cot = torch.rand(shape + (3,), generator=g, dtype=dtype)
    return tex, uv, duv, mask, cot


def _sampled(filter, wrap, backend, tex, uv, duv, mask, want_tex, want_uv):
    t = tex.clone().requires_grad_(want_tex)
    u = uv.clone().requires_grad_(want_uv)
    d = duv.clone().requires_grad_(want_uv)
    out = lg.texture(t, u, uv_derivs=d if filter == "trilinear" else None, filter=filter, wrap=wrap,
                     backend=backend, mask=mask)
    return out, (t, u, d)


def _record_of(out):
    """The record bytes of the texture op under ``out`` (through the reshape ``lg.texture`` adds)."""
    fn = out.grad_fn
    while fn is not None and not hasattr(fn, "record_bytes"):
        fn = fn.next_functions[0][0]
    return record_bytes(out) if fn is None else fn.record_bytes


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("filter", ["nearest", "bilinear", "trilinear"])
@pytest.mark.parametrize("want", list(WANTS))
def test_record_holds_what_the_filter_and_the_wanted_gradients_need(dtype, filter, want):
    tex, uv, duv, mask, _ = _inputs(dtype, 3)
    want_tex, want_uv = WANTS[want]
    out, _ = _sampled(filter, "repeat", "kernel", tex, uv, duv, mask, want_tex, want_uv)
    items = int(mask.sum())  # on the CPU the kernels run over the unmasked samples only
    f, C = dtype.itemsize, 3
    taps = {"nearest": 4, "bilinear": 16 + 4 * f, "trilinear": 2 * (16 + 4 * f)}[filter]
    # u, v derivatives per channel; trilinear with duv gradients: also the blend's, and d lod / d duv.
    slopes = {"nearest": 0, "bilinear": 2 * C * f, "trilinear": 3 * C * f + 4 * f}[filter]
    expected = items * ((taps if want_tex else 0) + (slopes if want_uv else 0))
    assert _record_of(out) == expected
    if filter == "trilinear" and want == "both":  # the full record: 116 bytes per RGB sample in float32
        assert expected == items * (116 if dtype == torch.float32 else 200)


def test_no_record_under_no_grad_even_when_inputs_require_grad(monkeypatch):
    # ``needs_input_grad`` says True under ``no_grad`` too: the forward must look at the caller's grad mode.
    made = []

    def spy(*args):
        records, nbytes = new_records(*args)
        made.append(nbytes)
        return records, nbytes

    new_records = kernel_texture._new_records
    monkeypatch.setattr(kernel_texture, "_new_records", spy)
    tex, uv, duv, mask, _ = _inputs(torch.float32, 4)
    with torch.no_grad():
        out, _ = _sampled("trilinear", "repeat", "kernel", tex, uv, duv, mask, True, True)
    assert out.grad_fn is None and record_bytes(out) == 0 and made == [0]
    out, _ = _sampled("trilinear", "repeat", "kernel", tex, uv, duv, mask, True, True)
    assert made[1] == _record_of(out) == int(mask.sum()) * 116


def test_trilinear_uv_gradient_without_duv_gradient_records_u_and_v_only():
    tex, uv, duv, mask, cot = _inputs(torch.float64, 5)
    u = uv.clone().requires_grad_()
    out = lg.texture(tex, u, uv_derivs=duv, filter="trilinear", backend="kernel", mask=mask)
    assert _record_of(out) == int(mask.sum()) * 3 * 2 * 8
    (out * cot).sum().backward()
    u_t = uv.clone().requires_grad_()
    (lg.texture(tex, u_t, uv_derivs=duv, filter="trilinear", backend="torch", mask=mask) * cot).sum().backward()
    torch.testing.assert_close(u.grad, u_t.grad, rtol=1e-12, atol=1e-12)


def _grads(out, cot, inputs):
    """Gradients of ``sum(out * cot)`` w.r.t. those of ``inputs`` that require one (zeros where unused)."""
    wanted = [x for x in inputs if x.requires_grad]
    if not out.requires_grad:  # nearest sampling with uv alone: nothing depends on it differentiably
        return [torch.zeros_like(x) for x in wanted]
    grads = torch.autograd.grad((out * cot).sum(), wanted, allow_unused=True)
    return [torch.zeros_like(x) if g is None else g for g, x in zip(grads, wanted)]


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("filter", ["nearest", "bilinear", "trilinear"])
@pytest.mark.parametrize("wrap", ["repeat", "clamp", "mirror"])
@pytest.mark.parametrize("want", list(WANTS))
def test_every_record_size_gives_the_twins_gradients(dtype, tol, filter, wrap, want):
    tex, uv, duv, mask, cot = _inputs(dtype, hash((filter, wrap, want)) % 1000, batched=want == "both")
    results = []
    for backend in ("kernel", "torch"):
        out, inputs = _sampled(filter, wrap, backend, tex, uv, duv, mask, *WANTS[want])
        results.append([out.detach()] + _grads(out, cot, inputs))
    assert len(results[0]) == len(results[1]) == 1 + (1 if want == "tex" else (2 if want == "uv" else 3))
    for k, t in zip(*results):
        torch.testing.assert_close(k, t, rtol=tol, atol=tol)
    if WANTS[want][1] and filter != "nearest":
        assert results[0][-2].abs().sum() > 0  # uv's gradient is there (not a stand-in)


def test_record_buffer_is_reused_step_after_step():
    """The record lives in one buffer-pool buffer (CPU): the next step's forward gets the same pages back once
    the backward has dropped it, and a record still held is never handed out twice."""
    g = torch.Generator().manual_seed(8)
    tex = torch.rand(16, 16, 3, generator=g, requires_grad=True)
    uv = torch.rand(100, 100, 2, generator=g, requires_grad=True)
    duv = (torch.randn(100, 100, 2, 2, generator=g) * 0.05).requires_grad_()
    assert 100 * 100 * 116 >= buffer_pool.MIN_BYTES  # large enough for the pool

    def record_storage(out):
        fn = out.grad_fn.next_functions[0][0]
        largest = max((t for t in fn.saved_tensors if t is not None), key=lambda t: t.untyped_storage().nbytes())
        assert largest.untyped_storage().nbytes() == _record_of(out) == 100 * 100 * 116
        return largest.untyped_storage().data_ptr()

    first = lg.texture(tex, uv, uv_derivs=duv)
    held = lg.texture(tex, uv, uv_derivs=duv)  # first's record is still held: another buffer
    assert record_storage(first) != record_storage(held)
    ptrs = set()
    for _ in range(3):
        out = lg.texture(tex, uv, uv_derivs=duv)
        ptrs.add(record_storage(out))
        out.sum().backward()
        del out
    assert len(ptrs) == 1


@pytest.mark.parametrize("filter", ["nearest", "bilinear", "trilinear"])
def test_every_sample_masked_records_nothing_and_gives_zero_gradients(filter):
    g = torch.Generator().manual_seed(9)
    tex = torch.rand(8, 8, 3, generator=g, requires_grad=True)
    uv = torch.rand(4, 4, 2, generator=g, requires_grad=True)
    duv = torch.rand(4, 4, 2, 2, generator=g, requires_grad=True)
    out = lg.texture(tex, uv, uv_derivs=duv if filter == "trilinear" else None, filter=filter,
                     mask=torch.zeros(4, 4, dtype=torch.bool))
    assert _record_of(out) == 0 and (out == 0).all()
    out.sum().backward()
    assert (tex.grad == 0).all()
    if filter != "nearest":
        assert (uv.grad == 0).all()
