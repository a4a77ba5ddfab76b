"""How a scene parameter is optimised: the trainable leaves behind it and the map that gives its value.

=============== ============================================ =================================================
``map``         leaves                                       value
=============== ============================================ =================================================
``identity``    the tensor itself                            ``x``
``sigmoid``     ``logit(x)`` (``x`` in [0, 1], clamped to    ``sigmoid(u)``: factors and texels in (0, 1)
                (1e-4, 1-1e-4))
``exp``         ``log(x)`` (``x >= 0``, clamped to >= 1e-8)  ``exp(u)``: intensities, radiance, scales > 0
``large_steps`` ``u = (I + lambda L) v`` (mesh ``verts``)    ``v = M^-1 u`` (:class:`~lumigrad.optim.LargeSteps`)
``pose``        6D rotation + translation (``[..., 4, 4]``)  a rigid transform, always a rotation
``intrinsics``  ``log fx, log fy`` and ``cx / W, cy / H``    ``K`` with the skew kept; ``shared`` fits one
                                                             ``K`` for all views
=============== ============================================ =================================================

``init`` sets the starting value before the map: a number or nested list (broadcast to the parameter's
shape), or a table ``{scale = s, add = a, noise = sigma, seed = k}`` giving ``x * s + a + sigma * N(0, 1)``.
A starting value the map cannot represent (``sigmoid`` outside [0, 1], ``exp`` below 0) is refused: clamping
it would start the fit at a different value than asked for, stuck where the map saturates.
"""

from __future__ import annotations

import math
from typing import Any, Callable, List, Optional, Tuple

import torch

from ..conventions import compose_world_to_cam, matrix_to_rotation_6d, rotation_6d_to_matrix
from ..optim.large_steps import LargeSteps
from .config import short_repr

__all__ = ["Parameterization", "apply_init", "make_parameterization"]


class Parameterization:
    """Trainable ``leaves`` and ``value()``, the scene tensor they stand for (differentiable in the leaves)."""

    def __init__(self, names: List[str], leaves: List[torch.Tensor], value: Callable[[], torch.Tensor]):
        self.names = names
        self.leaves = leaves
        self._value = value

    def value(self) -> torch.Tensor:
        return self._value()

    def apply(self, scene) -> torch.Tensor:
        """Write the current value into ``scene`` under every name it has; return it."""
        v = self.value()
        for name in self.names:
            scene[name] = v
        return v


def apply_init(x: torch.Tensor, init: Any, where: str) -> torch.Tensor:
    """The starting value of a parameter whose current value is ``x``; see the module docstring."""
    x = x.detach()
    if init is None:
        return x.clone()
    if isinstance(init, dict):
        unknown = set(init) - {"scale", "add", "noise", "seed"}
        if unknown:
            raise ValueError(f"{where}.init has unknown key {sorted(unknown)[0]!r}; use scale, add, noise, seed")
        out = x * _broadcast(init.get("scale", 1.0), x, f"{where}.init.scale")
        out = out + _broadcast(init.get("add", 0.0), x, f"{where}.init.add")
        sigma = init.get("noise", 0.0)
        if not isinstance(sigma, (int, float)) or isinstance(sigma, bool) or not 0 <= sigma < math.inf:
            raise ValueError(f"{where}.init.noise must be a finite number >= 0; got {short_repr(sigma)}")
        if sigma:
            seed = init.get("seed", 0)
            if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2 ** 63:
                raise ValueError(f"{where}.init.seed must be an integer in [0, 2^63); got {short_repr(seed)}")
            g = torch.Generator().manual_seed(seed)
            out = out + sigma * torch.randn(x.shape, generator=g, dtype=torch.float64).to(x)
        return out
    return _broadcast(init, x, f"{where}.init").expand_as(x).clone()


def _broadcast(value: Any, like: torch.Tensor, where: str) -> torch.Tensor:
    try:
        t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{where} must be a number or a nested list of numbers; got {short_repr(value)}") from None
    try:
        fits = torch.broadcast_shapes(t.shape, like.shape) == like.shape
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(f"{where} has shape {tuple(t.shape)}, which does not broadcast to the parameter's "
                         f"{tuple(like.shape)}") from None
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{where} must be finite; got {short_repr(value)}")
    return t


def make_parameterization(kind: str, names: List[str], start: torch.Tensor, where: str, *,
                          faces: Optional[torch.Tensor] = None, size: Optional[Tuple[int, int]] = None,
                          lambda_: float = 19.0, shared: bool = False) -> Parameterization:
    """The :class:`Parameterization` ``kind`` of the parameter ``names`` starting at ``start``.

    Args:
        kind: one of the maps of the module docstring.
        names: the scene names of the tensor (several when it is shared).
        start: the starting value.
        where: the config key, for messages.
        faces: the mesh's faces, for ``large_steps``.
        size: the camera's ``(width, height)``, for ``intrinsics``.
        lambda_: the large-steps smoothing weight.
        shared: for ``intrinsics``, fit one ``K`` for every view of a batched camera.

    Raises:
        ValueError: the map does not suit the parameter (naming it and ``where``).
    """
    name = names[0]
    start = start.detach()
    if kind == "identity":
        leaf = start.clone().requires_grad_(True)
        return Parameterization(names, [leaf], lambda: leaf)
    if kind == "sigmoid":
        _check_domain(start, where, name, "sigmoid", "in [0, 1]", (start >= 0) & (start <= 1))
        leaf = torch.logit(start.clamp(1e-4, 1 - 1e-4)).requires_grad_(True)
        return Parameterization(names, [leaf], lambda: torch.sigmoid(leaf))
    if kind == "exp":
        _check_domain(start, where, name, "exp", ">= 0", start >= 0)
        leaf = start.clamp_min(1e-8).log().requires_grad_(True)
        return Parameterization(names, [leaf], lambda: leaf.exp())
    if kind == "large_steps":
        if not name.endswith(".verts") or faces is None:
            raise ValueError(f"{where}: map 'large_steps' is for mesh vertices (meshes.NAME.verts); {name!r} is not")
        ls = LargeSteps(start, faces, lambda_=lambda_)
        return Parameterization(names, [ls.parameter], ls.verts)
    if kind == "pose":
        if start.shape[-2:] != (4, 4) or not (name.endswith(".world_to_cam") or name.endswith(".to_world")):
            raise ValueError(f"{where}: map 'pose' is for rigid transforms (cameras.NAME.world_to_cam, "
                             f"meshes.NAME.to_world); {name!r} is not")
        r6 = matrix_to_rotation_6d(start[..., :3, :3]).clone().requires_grad_(True)
        t = start[..., :3, 3].clone().requires_grad_(True)
        return Parameterization(names, [r6, t], lambda: compose_world_to_cam(rotation_6d_to_matrix(r6), t))
    if kind == "intrinsics":
        if not name.endswith(".K") or size is None:
            raise ValueError(f"{where}: map 'intrinsics' is for camera matrices (cameras.NAME.K); {name!r} is not")
        return _intrinsics(names, start, size, shared)
    raise ValueError(f"{where}: unknown map {kind!r}")


def _check_domain(start: torch.Tensor, where: str, name: str, kind: str, domain: str, ok: torch.Tensor) -> None:
    if not bool(ok.all()):
        bad = start[~ok]
        raise ValueError(f"{where}: the starting value of {name!r} has {bad.numel()} of {start.numel()} values outside "
                         f"map {kind!r}'s domain ({domain}), e.g. {float(bad.flatten()[0]):.6g}; set init to a value "
                         f"{domain} or choose another map")


def _intrinsics(names: List[str], K: torch.Tensor, size: Tuple[int, int], shared: bool) -> Parameterization:
    width, height = size
    shape = K.shape
    if shared and K.dim() > 2:
        K = K.reshape(-1, 3, 3).mean(0)
    log_f = torch.stack([K[..., 0, 0], K[..., 1, 1]], -1).log().clone().requires_grad_(True)
    centre = torch.stack([K[..., 0, 2] / width, K[..., 1, 2] / height], -1).clone().requires_grad_(True)
    skew = K[..., 0, 1].clone()

    def value() -> torch.Tensor:
        f = log_f.exp()
        zero, one = torch.zeros_like(skew), torch.ones_like(skew)
        rows = [torch.stack([f[..., 0], skew, centre[..., 0] * width], -1),
                torch.stack([zero, f[..., 1], centre[..., 1] * height], -1),
                torch.stack([zero, zero, one], -1)]
        return torch.stack(rows, -2).expand(shape)

    return Parameterization(names, [log_f, centre], value)

