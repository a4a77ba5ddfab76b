"""The CPU buffer pool: a buffer is handed out again only once nothing outside the pool shares its storage."""

import torch

from lumigrad.kernels import buffer_pool

N = buffer_pool.MIN_BYTES // 4  # float32 elements of the smallest pooled request


def test_a_released_buffer_is_reused_and_a_held_one_never():
    buffer_pool.clear()
    first = buffer_pool.take((N,), torch.float32, torch.device("cpu"))
    ptr = first.data_ptr()
    second = buffer_pool.take((N,), torch.float32, torch.device("cpu"))
    assert second.data_ptr() != ptr  # ``first`` is still held
    kept = first.view(2, -1)  # a view holds the storage too
    del first
    third = buffer_pool.take((N,), torch.float32, torch.device("cpu"))
    assert third.data_ptr() not in (ptr, second.data_ptr())
    del kept
    again = buffer_pool.take((N // 2, 2), torch.float32, torch.device("cpu"))
    assert again.data_ptr() == ptr and again.shape == (N // 2, 2)
    assert not again._is_view()  # so it may be a custom Function's output, modified in place later


def test_a_buffer_stored_as_a_gradient_stays_out_of_the_pool_until_the_gradient_is_dropped():
    buffer_pool.clear()
    x = torch.ones(N, requires_grad=True)

    class Identity(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, v):
            return buffer_pool.take((N,), torch.float32, torch.device("cpu")).copy_(v)

    Identity.apply(x).sum().backward()
    ptr = x.grad.data_ptr()
    assert buffer_pool.take((N,), torch.float32, torch.device("cpu")).data_ptr() != ptr
    assert torch.equal(x.grad, torch.ones(N))
    x.grad = None
    assert buffer_pool.take((N,), torch.float32, torch.device("cpu")).data_ptr() == ptr


def test_small_requests_and_other_sizes_get_their_own_buffers():
    buffer_pool.clear()
    small = buffer_pool.take((16,), torch.float32, torch.device("cpu"))
    assert small.shape == (16,)
    assert buffer_pool.pooled() == 0
    a = buffer_pool.take((N,), torch.float32, torch.device("cpu"))
    ptr = a.data_ptr()
    del a
    assert buffer_pool.take((N + 1,), torch.float32, torch.device("cpu")).data_ptr() != ptr
    assert buffer_pool.take((N,), torch.float64, torch.device("cpu")).dtype == torch.float64
    assert buffer_pool.pooled() <= buffer_pool.MAX_BUFFERS
