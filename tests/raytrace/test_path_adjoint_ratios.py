"""The adjoint pass's sampled-weight ratios (``PathAdjoint``): a surface vertex's BSDF-weight ratio held until the
next vertex says what area-light emission its sample found (``defer_ratio`` / ``flush_ratio``), and a free
flight's ratio on the way (``fold_ratio``), which multiplies the same radiance still to come and so must leave
out the same found emission: area-parameterised next-event estimation differentiates that light, the medium's
transmittance included. Exact checks of the gradients each one back-propagates."""

from __future__ import annotations

import torch

from lumigrad.raytrace.transport import PathAdjoint

F64 = torch.float64


def _adjoint(theta):
    """Four paths, their radiance and adjoint; one parameter ``theta``."""
    radiance = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]], dtype=F64)
    v = torch.tensor([[0.5, 1.0], [1.5, 2.0], [2.5, 3.0], [3.5, 4.0]], dtype=F64)
    return PathAdjoint(v, radiance, [theta]), radiance, v


def _ratio(weight):
    return weight / weight.detach()


def test_a_flight_on_held_paths_multiplies_what_the_held_ratio_does():
    """Paths 1 and 3 hold a BSDF-weight ratio ``w_b(theta)``; a flight of weight ``w_f(theta)`` on paths 3 and 0
    follows. Paths 1 and 3 found emission at the next vertex. The gradient is ``sum v (rest - found) (w_b' / w_b)``
    over the held paths, plus ``v (rest - found) w_f' / w_f`` on the held path 3 and ``v rest w_f' / w_f`` on
    path 0, which holds nothing."""
    theta = torch.tensor(0.7, dtype=F64, requires_grad=True)
    adj, rest, v = _adjoint(theta)
    held = torch.tensor([1, 3])
    bsdf = torch.stack([theta ** 2 * torch.ones(2, dtype=F64), theta * torch.tensor([1.0, 3.0], dtype=F64)])
    flight_paths = torch.tensor([3, 0])
    flight = torch.stack([torch.exp(-theta) * torch.ones(2, dtype=F64), torch.exp(-2 * theta) * torch.ones(2, dtype=F64)])
    bsdf_ratio, flight_ratio = _ratio(bsdf), _ratio(flight)
    with torch.no_grad():  # as in sample_paths: the ratios carry their graphs, the pass itself runs without
        adj.defer_ratio(held, bsdf_ratio)
        adj.fold_ratio(flight_paths, flight_ratio)
        found = torch.zeros_like(rest)
        found[1] = torch.tensor([0.25, 0.5], dtype=F64)
        found[3] = torch.tensor([1.0, 2.0], dtype=F64)
        adj.found.copy_(found)
        adj.flush_ratio()
    t = theta.detach()
    d_log_bsdf = torch.stack([2 / t * torch.ones(2, dtype=F64), 1 / t * torch.ones(2, dtype=F64)])  # rows: paths 1, 3
    expected = (v[held] * (rest[held] - found[held]) * d_log_bsdf).sum()
    expected = expected + (v[3] * (rest[3] - found[3]) * -1.0).sum() + (v[0] * rest[0] * -2.0).sum()
    torch.testing.assert_close(adj.grads[0], expected, rtol=1e-12, atol=1e-12)
    assert not bool(adj.awaiting.any()) and float(adj.found.abs().sum()) == 0.0


def test_a_flight_with_nothing_held_back_propagates_at_once():
    theta = torch.tensor(0.3, dtype=F64, requires_grad=True)
    adj, rest, v = _adjoint(theta)
    paths = torch.tensor([2, 0])
    ratio = _ratio(torch.exp(-3 * theta) * torch.ones(2, 2, dtype=F64))
    with torch.no_grad():
        adj.fold_ratio(paths, ratio)
    torch.testing.assert_close(adj.grads[0], (v[paths] * rest[paths] * -3.0).sum(), rtol=1e-12, atol=1e-12)
