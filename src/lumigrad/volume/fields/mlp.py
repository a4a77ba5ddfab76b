"""Small fully connected heads for neural fields and the density activations they end in."""

from __future__ import annotations

from typing import Literal, Optional

import torch
from torch import nn

from ..._checks import check_choice, check_number, check_positive_int

__all__ = ["MLP", "density_activation"]

_ACTIVATIONS = {"relu": nn.ReLU, "softplus": nn.Softplus, "silu": nn.SiLU}


def density_activation(raw: torch.Tensor, kind: Literal["softplus", "relu", "exp"] = "softplus") -> torch.Tensor:
    """Map a raw network output to a non-negative density ``sigma``.

    ``"softplus"``: ``log(1 + exp(raw))`` (smooth, never exactly zero, gradient everywhere; mip-NeRF's choice);
    ``"relu"``: ``max(raw, 0)`` (exact zeros, so empty space is exactly empty, but a dead unit gets no gradient;
    the original NeRF's choice); ``"exp"``: ``exp(raw)`` with ``raw`` clamped to ``[-15, 15]`` in the backward
    pass (instant-ngp's truncated exponential: densities span orders of magnitude with a bounded raw output,
    so an opaque surface forms in a few hundred steps where softplus, linear for large ``raw``, needs thousands).

    Args:
        raw: any shape, float.
        kind: ``"softplus"``, ``"relu"`` or ``"exp"``.

    Returns:
        ``sigma``, same shape and dtype, ``>= 0``.

    **Differentiability:** softplus is smooth; relu has gradient 0 for ``raw < 0`` (and at 0); exp's gradient is
    ``exp(clamp(raw, -15, 15))`` (bounded).

    Example::

        >>> density_activation(torch.tensor([-1.0, 0.0, 2.0]), "relu").tolist()
        [0.0, 0.0, 2.0]
    """
    check_choice(kind, "kind", ("softplus", "relu", "exp"))
    if kind == "exp":
        return _TruncatedExp.apply(raw)
    return torch.nn.functional.softplus(raw) if kind == "softplus" else torch.relu(raw)


class _TruncatedExp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, raw):
        ctx.save_for_backward(raw)
        return torch.exp(raw.clamp(max=80.0 if raw.dtype == torch.float64 else 30.0))

    @staticmethod
    def backward(ctx, grad):
        (raw,) = ctx.saved_tensors
        return grad * torch.exp(raw.clamp(-15.0, 15.0))


class MLP(nn.Module):
    """A plain multilayer perceptron: ``Linear -> act`` repeated ``num_hidden_layers`` times, then ``Linear``.

    Weights use PyTorch's default ``nn.Linear`` initialisation (Kaiming-uniform); the last layer's bias is
    set to ``output_bias`` (e.g. the density bias of :class:`~lumigrad.volume.fields.nerf.NerfField`).

    Args:
        in_dim: input width.
        out_dim: output width.
        hidden_dim: width of the hidden layers.
        num_hidden_layers: number of hidden layers (``>= 0``; 0 gives one linear map).
        activation: ``"relu"``, ``"softplus"`` or ``"silu"`` between layers.
        output_bias: initial value of every bias of the last layer (``None``: PyTorch's default init).

    **Differentiability:** smooth in the input and parameters for softplus / silu; piecewise linear for relu.

    Example::

        >>> MLP(4, 2, hidden_dim=8)(torch.zeros(3, 4)).shape
        torch.Size([3, 2])
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 64, num_hidden_layers: int = 1,
                 activation: str = "relu", output_bias: Optional[float] = None):
        super().__init__()
        in_dim = check_positive_int(in_dim, "in_dim")
        out_dim = check_positive_int(out_dim, "out_dim")
        hidden_dim = check_positive_int(hidden_dim, "hidden_dim")
        if isinstance(num_hidden_layers, bool) or not isinstance(num_hidden_layers, int) or num_hidden_layers < 0:
            raise ValueError(f"num_hidden_layers must be an int >= 0; got {num_hidden_layers!r}")
        check_choice(activation, "activation", tuple(_ACTIVATIONS))
        layers, width = [], in_dim
        for _ in range(num_hidden_layers):
            layers += [nn.Linear(width, hidden_dim), _ACTIVATIONS[activation]()]
            width = hidden_dim
        last = nn.Linear(width, out_dim)
        if output_bias is not None:
            nn.init.constant_(last.bias, check_number(output_bias, "output_bias"))
        layers.append(last)
        self.net = nn.Sequential(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the network to ``x [..., in_dim]``; returns ``[..., out_dim]``."""
        if x.shape[-1] != self.in_dim:
            raise ValueError(f"x must have shape [..., {self.in_dim}]; got {tuple(x.shape)}")
        return self.net(x)
