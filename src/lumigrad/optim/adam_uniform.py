"""``AdamUniform``: Adam with one second-moment normaliser per parameter tensor (Nicolet et al. 2021)."""

from __future__ import annotations

import math
from typing import Callable, Iterable, Optional, Tuple

import torch

__all__ = ["AdamUniform"]


class AdamUniform(torch.optim.Optimizer):
    """Adam whose step is rescaled uniformly over each parameter tensor instead of per coordinate.

    For each parameter ``p`` with gradient ``g`` at step ``t``::

        m = beta1 m + (1 - beta1) g          v = beta2 v + (1 - beta2) g^2      (elementwise)
        m_hat = m / (1 - beta1^t)            v_hat = v / (1 - beta2^t)
        p -= lr * m_hat / (sqrt(max(v_hat)) + eps)

    ``max(v_hat)`` is the infinity norm of the whole tensor's running second moment, as in "Large Steps in
    Inverse Rendering of Geometry" (Nicolet, Jacobson, Jakob 2021). Plain Adam divides each coordinate by
    its own ``sqrt(v_hat)``, which equalises step sizes across vertices and so re-introduces exactly the
    high-frequency detail a :class:`~lumigrad.optim.LargeSteps` reparameterisation removes; here the step
    is the (momentum-averaged) gradient direction and only its overall scale adapts, making ``lr`` a
    scale-free step length (the largest coordinate moves by about ``lr``).

    Args:
        params: iterable of tensors or parameter-group dicts.
        lr: step length, ``>= 0`` (``1e-2`` to ``3e-2`` works for unit-sized meshes with ``lambda_ ~ 19``).
        betas: ``(beta1, beta2)`` decay rates of the moments, each in ``[0, 1)``.
        eps: added to the normaliser, ``>= 0``.

    **Differentiability:** not applicable (an optimiser; ``step`` runs under ``torch.no_grad``).
    ``state_dict`` / ``load_state_dict`` round-trip the moments and step counts for checkpointing.

    Example:
        >>> p = torch.nn.Parameter(torch.tensor([1.0, -4.0]))
        >>> opt = AdamUniform([p], lr=0.1)
        >>> p.grad = torch.tensor([1.0, -4.0]); opt.step()
        >>> p.detach()  # first step: lr * g / max|g|, the gradient direction
        tensor([ 0.9750, -3.9000])
    """

    def __init__(self, params: Iterable, lr: float = 1e-2, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr < 0:
            raise ValueError(f"lr must be a finite number >= 0; got {lr!r}")
        if (not isinstance(betas, (tuple, list)) or len(betas) != 2
                or not all(isinstance(b, (int, float)) and 0.0 <= b < 1.0 for b in betas)):
            raise ValueError(f"betas must be two numbers in [0, 1); got {betas!r}")
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
            raise ValueError(f"eps must be a finite number >= 0; got {eps!r}")
        super().__init__(params, dict(lr=float(lr), betas=(float(betas[0]), float(betas[1])), eps=float(eps)))

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], torch.Tensor]] = None) -> Optional[torch.Tensor]:
        """Take one step; ``closure`` (optional) re-evaluates the loss with gradients enabled and returns it."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (b1, b2), eps = group["lr"], group["betas"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if g.is_sparse:
                    raise RuntimeError("AdamUniform does not support sparse gradients")
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] = int(state["step"]) + 1
                t = state["step"]
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                v_max = (v.max() / (1 - b2 ** t)).sqrt() if v.numel() else v.new_zeros(())
                denom = v_max + eps
                denom = torch.where(denom > 0, denom, torch.ones_like(denom))  # all-zero gradients: no step
                p.sub_(m / denom, alpha=lr / (1 - b1 ** t))
        return loss
