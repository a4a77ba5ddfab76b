"""Deformation fields over time: per-vertex offsets ``offsets(verts, t) [..., V, 3]`` added to a mesh's vertices.

Two kinds, both containers over functional ops, both with ``parameters()`` (leaf tensors with grad) and
``offsets(verts, times)``:

* :class:`BasisDeformation`: ``offsets(t) = sum_k c_k(t) B_k`` with learnable shapes ``B [K, V, 3]`` and a fixed
  smooth temporal basis ``c_k(t)`` (:func:`dct_basis`: the cosines of the DCT-II,
  ``c_k(t) = cos(pi k s)``, ``s = (t - t0) / (t1 - t0)`` in ``[0, 1]``). The cosine basis is smooth
  (C-infinity), orthogonal on a uniform grid of times and ordered by frequency, so ``K`` is a band limit: a
  small ``K`` cannot fit frame-to-frame noise. ``c_0 = 1`` is a constant (rest-shape correction).
* :class:`MLPDeformation`: a small time-conditioned MLP, ``offset = MLP(gamma(x), gamma(t))``, with the
  positional encoding ``gamma(p) = (p, sin(2^l pi p), cos(2^l pi p))_{l < L}`` (NeRF), ReLU-free softplus
  hidden layers (smooth, so gradcheck and second-order smoothness hold) and a **zero-initialised** last layer,
  so the deformation starts at the identity.

:func:`deform_verts` applies either to vertices.

**Gauge.** Seen by a moving camera, a rigid motion of the whole shape and the opposite motion of the camera give
the same frames, so a deformation fitted jointly with a camera path can absorb the camera's motion.
:func:`remove_rigid_motion` projects the best-fit infinitesimal rigid motion (a translation plus a linearised
rotation about the rest shape's centroid) out of offsets; :class:`NonRigidDeformation` wraps a deformation with
it, so the camera has to explain every rigid motion and the deformation only the non-rigid rest.
"""

from __future__ import annotations

import math
from typing import Dict, Sequence, Tuple, Union

import torch

from .._checks import check_number, check_positive_int, check_tensor

__all__ = ["BasisDeformation", "MLPDeformation", "NonRigidDeformation", "basis_offsets", "dct_basis", "deform_verts",
           "mlp_offsets", "positional_encoding", "remove_rigid_motion"]

TimesLike = Union[float, Sequence[float], torch.Tensor]


def _times(times: TimesLike, like: torch.Tensor) -> torch.Tensor:
    t = times if isinstance(times, torch.Tensor) else torch.as_tensor(times, dtype=like.dtype)
    check_tensor(t, "times", max_dims=1, floating=True, finite=True)
    return t.to(device=like.device, dtype=like.dtype)


def dct_basis(times: torch.Tensor, num_basis: int, t_range: Tuple[float, float]) -> torch.Tensor:
    """Temporal cosine basis ``[..., K]``: ``c_k(t) = cos(pi k (t - t0) / (t1 - t0))``, ``k = 0 .. K-1``.

    Example: ``dct_basis(torch.tensor([0., 1.]), 3, (0, 1))`` is ``[[1, 1, 1], [1, -1, 1]]``.

    **Differentiability:** smooth in ``times``.
    """
    t0, t1 = t_range
    s = (times - t0) / (t1 - t0)
    k = torch.arange(num_basis, dtype=times.dtype, device=times.device)
    return torch.cos(math.pi * s[..., None] * k)


def basis_offsets(basis: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """``sum_k coeffs[..., k] basis[k]``: offsets ``[..., V, 3]`` from shapes ``basis [K, V, 3]``, ``coeffs [..., K]``.

    **Differentiability:** bilinear in ``basis`` and ``coeffs``.
    """
    return torch.einsum("...k,kvc->...vc", coeffs, basis)


def positional_encoding(p: torch.Tensor, num_freqs: int) -> torch.Tensor:
    """``[..., D] -> [..., D (1 + 2 L)]``: ``p`` then ``sin(2^l pi p)``, ``cos(2^l pi p)`` for ``l < L``."""
    if num_freqs == 0:
        return p
    freqs = math.pi * 2.0 ** torch.arange(num_freqs, dtype=p.dtype, device=p.device)
    x = p[..., None, :] * freqs[:, None]  # [..., L, D]
    return torch.cat([p, torch.sin(x).flatten(-2), torch.cos(x).flatten(-2)], -1)


def mlp_offsets(weights: Sequence[Tuple[torch.Tensor, torch.Tensor]], verts: torch.Tensor, times: torch.Tensor,
                freqs_x: int, freqs_t: int) -> torch.Tensor:
    """The MLP deformation's offsets ``[N, V, 3]`` for ``verts [V, 3]`` at ``times [N]``.

    Layers ``h = softplus(W h + b)`` except the last (linear). **Differentiability:** smooth in every weight,
    in ``verts`` and in ``times``.
    """
    n, v = times.shape[0], verts.shape[0]
    ex = positional_encoding(verts, freqs_x)[None].expand(n, v, -1)
    et = positional_encoding(times[:, None], freqs_t)[:, None].expand(n, v, -1)
    h = torch.cat([ex, et], -1)
    for k, (W, b) in enumerate(weights):
        h = h @ W.T + b
        if k < len(weights) - 1:
            h = torch.nn.functional.softplus(h)
    return h


class BasisDeformation:
    """Per-vertex offsets with a temporal cosine basis: ``offsets(t) = sum_k cos(pi k s(t)) B_k``.

    Args:
        num_verts: ``V``; num_basis: ``K >= 1`` (band limit: ``K - 1`` half-periods over ``t_range``).
        t_range: ``(t0, t1)``, ``t0 < t1``: the times the sequence spans (``s = (t - t0) / (t1 - t0)``).
        dtype, device: of the shapes ``B`` (zeros: the identity deformation).

    Example: with ``B_1 = d`` and every other shape zero, vertices move by ``+d`` at ``t0`` and ``-d`` at ``t1``.

    **Differentiability:** offsets are linear in ``parameters()["basis"] [K, V, 3]`` and smooth in time.
    """

    def __init__(self, num_verts: int, num_basis: int = 4, t_range: Tuple[float, float] = (0.0, 1.0), *,
                 dtype: torch.dtype = torch.float32, device=None):
        check_positive_int(num_verts, "num_verts")
        check_positive_int(num_basis, "num_basis")
        if not isinstance(t_range, (tuple, list)) or len(t_range) != 2:
            raise ValueError(f"t_range must be (t0, t1); got {t_range!r}")
        t0, t1 = check_number(t_range[0], "t_range[0]"), check_number(t_range[1], "t_range[1]")
        if not t0 < t1:
            raise ValueError(f"t_range must satisfy t0 < t1; got {t_range!r}")
        self.t_range = (t0, t1)
        self.basis = torch.zeros(num_basis, num_verts, 3, dtype=dtype, device=device, requires_grad=True)

    def parameters(self) -> Dict[str, torch.Tensor]:
        """``{"basis": [K, V, 3]}``."""
        return {"basis": self.basis}

    def offsets(self, verts: torch.Tensor, times: TimesLike) -> torch.Tensor:
        """Offsets ``[N, V, 3]`` at ``times [N]`` (``verts [V, 3]`` only sets V, dtype and device)."""
        check_tensor(verts, "verts", trailing=(self.basis.shape[1], 3), max_dims=2, floating=True)
        t = _times(times, verts).reshape(-1)
        return basis_offsets(self.basis.to(verts.dtype), dct_basis(t, self.basis.shape[0], self.t_range))


class MLPDeformation:
    """A time-conditioned MLP ``(gamma(x), gamma(t)) -> offset``, starting at the identity (zero last layer).

    Args:
        hidden: width of the hidden layers; layers: number of hidden layers (>= 1).
        freqs_x, freqs_t: positional-encoding octaves ``L`` for positions and time (>= 0).
        seed: seed of the hidden layers' initialisation (uniform ``+-1/sqrt(fan_in)``, as ``nn.Linear``).
        dtype, device: of the weights.

    Positions are encoded as given: scale the mesh (or the time) to about ``[-1, 1]`` so the octaves make sense.

    **Differentiability:** smooth (softplus hidden layers) in every weight, the vertices and the time.
    """

    def __init__(self, hidden: int = 64, layers: int = 2, *, freqs_x: int = 4, freqs_t: int = 4, seed: int = 0,
                 dtype: torch.dtype = torch.float32, device=None):
        check_positive_int(hidden, "hidden")
        check_positive_int(layers, "layers")
        for name, v in (("freqs_x", freqs_x), ("freqs_t", freqs_t)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be a non-negative int; got {v!r}")
        self.freqs_x, self.freqs_t = freqs_x, freqs_t
        g = torch.Generator().manual_seed(seed)
        sizes = [3 * (1 + 2 * freqs_x) + (1 + 2 * freqs_t)] + [hidden] * layers + [3]
        self.weights = []
        for k, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            last = k == len(sizes) - 2
            bound = 1.0 / math.sqrt(fan_in)
            W = torch.zeros(fan_out, fan_in) if last else (torch.rand(fan_out, fan_in, generator=g) * 2 - 1) * bound
            b = torch.zeros(fan_out) if last else (torch.rand(fan_out, generator=g) * 2 - 1) * bound
            self.weights.append((W.to(device=device, dtype=dtype).requires_grad_(),
                                 b.to(device=device, dtype=dtype).requires_grad_()))

    def parameters(self) -> Dict[str, torch.Tensor]:
        """``{"layer{k}.weight": [out, in], "layer{k}.bias": [out]}``."""
        out = {}
        for k, (W, b) in enumerate(self.weights):
            out[f"layer{k}.weight"], out[f"layer{k}.bias"] = W, b
        return out

    def offsets(self, verts: torch.Tensor, times: TimesLike) -> torch.Tensor:
        """Offsets ``[N, V, 3]`` of ``verts [V, 3]`` at ``times [N]``."""
        check_tensor(verts, "verts", trailing=(None, 3), max_dims=2, floating=True, finite=True)
        t = _times(times, verts).reshape(-1)
        w = [(W.to(verts.dtype), b.to(verts.dtype)) for W, b in self.weights]
        return mlp_offsets(w, verts, t, self.freqs_x, self.freqs_t)


def remove_rigid_motion(verts: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """``offsets [..., V, 3]`` less their best-fit infinitesimal rigid motion about the centroid of ``verts [V, 3]``.

    The rigid fields of the rest shape are ``d_i = a + w x (x_i - c)`` (``c`` the centroid, all vertices weighted
    alike). Least squares over ``a`` and ``w`` gives ``a = mean_i d_i`` and ``I w = sum_i r_i x d_i`` with
    ``r_i = x_i - c`` and the inertia ``I = sum_i (|r_i|^2 Id - r_i r_i^T)``; the result is
    ``d_i - a - w x r_i``. It is the orthogonal projection onto the complement of the six rigid fields: linear in
    ``offsets``, idempotent, zero for any ``a + w x r``, and its output has zero mean and zero angular momentum
    ``sum_i r_i x d_i``. A finite rotation by ``theta`` leaves a remainder of order ``theta^2 |r|``.

    Raises:
        ValueError: ``verts`` (nearly) collinear, so a rotation about their line is not defined by them.

    **Differentiability:** linear in ``offsets``, smooth in ``verts`` (away from collinear vertices).
    """
    check_tensor(verts, "verts", trailing=(None, 3), max_dims=2, floating=True, finite=True)
    check_tensor(offsets, "offsets", trailing=(verts.shape[0], 3), floating=True)
    offsets = offsets.to(verts.dtype)
    r = verts - verts.mean(0)
    eye = torch.eye(3, dtype=verts.dtype, device=verts.device)
    inertia = (r * r).sum() * eye - r.T @ r
    smallest = torch.linalg.eigvalsh(inertia.detach())[0]
    if not smallest > 1e-9 * float(inertia.detach().trace()):
        raise ValueError("verts are (nearly) collinear: a rigid rotation about their line is not defined by them")
    shift = offsets.mean(-2, keepdim=True)
    moment = torch.linalg.cross(r.expand_as(offsets), offsets, dim=-1).sum(-2)  # [..., 3]
    w = torch.linalg.solve(inertia, moment.unsqueeze(-1)).squeeze(-1)
    spin = torch.linalg.cross(w.unsqueeze(-2).expand_as(offsets), r.expand_as(offsets), dim=-1)
    return offsets - shift - spin


class NonRigidDeformation:
    """A deformation with its rigid part removed: ``offsets = remove_rigid_motion(verts, inner.offsets(verts, t))``.

    Fitted jointly with a camera path, the wrapped deformation cannot move or turn the shape as a whole (the gauge
    freedom of shape and camera is fixed: the camera explains every rigid motion). ``inner`` is any deformation
    with ``offsets`` and ``parameters()`` (:class:`BasisDeformation`, :class:`MLPDeformation`); it is read at
    each call, so replacing its parameters takes effect.

    **Differentiability:** as ``inner``; the projection is linear.
    """

    def __init__(self, inner):
        if not callable(getattr(inner, "offsets", None)):
            raise TypeError(f"inner must have an offsets(verts, times) method; got {type(inner).__name__}")
        self.inner = inner

    def parameters(self) -> Dict[str, torch.Tensor]:
        """The wrapped deformation's parameters."""
        return self.inner.parameters()

    def offsets(self, verts: torch.Tensor, times: TimesLike) -> torch.Tensor:
        """Non-rigid offsets ``[N, V, 3]`` of ``verts [V, 3]`` at ``times [N]``."""
        return remove_rigid_motion(verts, self.inner.offsets(verts, times))


def deform_verts(verts: torch.Tensor, deformation, times: TimesLike) -> torch.Tensor:
    """``verts [V, 3] + deformation.offsets(verts, times)``: ``[N, V, 3]`` for ``times [N]``, ``[V, 3]`` for a scalar.

    ``deformation`` is anything with ``offsets(verts, times) -> [N, V, 3]`` (:class:`BasisDeformation`,
    :class:`MLPDeformation`). **Differentiability:** through ``verts`` and the deformation's parameters.
    """
    if not callable(getattr(deformation, "offsets", None)):
        raise TypeError(f"deformation must have an offsets(verts, times) method; got {type(deformation).__name__}")
    scalar = not isinstance(times, (list, tuple)) and (not isinstance(times, torch.Tensor) or times.dim() == 0)
    out = verts + deformation.offsets(verts, times)
    return out[0] if scalar else out
