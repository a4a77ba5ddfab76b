"""Check any scene parameter's gradient against finite differences of the rendered image, on your own scene.

``check_scene_gradient(scene, camera, name)`` renders ``loss = sum(w * render(scene, camera))`` with fixed
random pixel weights ``w``, takes ``d loss / d scene[name]`` by autograd, and compares a few of its entries
with central differences of the same loss. It is what ``lumigrad gradcheck`` runs. Its old path
``lumigrad.scene.gradient_check`` still works, deprecated (:mod:`lumigrad.integrators.deprecated`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import torch

from .._checks import check_number, check_positive_int
from ..cameras.camera import Camera
from ..scene.scene import Scene
from .base import integrator_class, integrator_settings
from .dispatch import render

__all__ = ["GradientCheck", "check_scene_gradient"]


@dataclass
class GradientCheck:
    """Entries checked (flat indices into the parameter), autograd and finite-difference values, and summaries.

    ``cosine`` is the cosine similarity of the two vectors; ``max_relative_error`` the largest
    ``|a - n| / max(|a|, |n|, floor)`` with ``floor`` 1e-3 of the largest magnitude (so entries whose
    gradient is ~0 do not dominate).
    """

    name: str
    indices: List[int]
    analytic: torch.Tensor
    numeric: torch.Tensor
    cosine: float
    max_relative_error: float

    def table(self) -> str:
        rows = [f"{'entry':>8} {'autograd':>14} {'finite diff':>14} {'rel. error':>11}"]
        scale = max(float(self.analytic.abs().max()), float(self.numeric.abs().max()), 1e-30)
        for i, a, n in zip(self.indices, self.analytic.tolist(), self.numeric.tolist()):
            rel = abs(a - n) / max(abs(a), abs(n), 1e-3 * scale)
            rows.append(f"{i:>8} {a:>14.6g} {n:>14.6g} {rel:>11.2e}")
        return "\n".join(rows)


def check_scene_gradient(scene: Scene, camera: Camera, name: str, *, samples: int = 8, eps: float = 1e-3,
                         seed: int = 0, background: float = 0.0,
                         indices: Optional[List[int]] = None, integrator: str = "raster", spp: int = 1,
                         time: Optional[float] = None, animation: Optional[str] = None,
                         **settings) -> GradientCheck:
    """Compare autograd with central differences for ``samples`` entries of ``scene[name]``.

    Args:
        scene, camera: what to render (:func:`lumigrad.render`).
        name: a key of ``scene.parameters()``, e.g. ``"lights.key.position"``.
        samples: how many entries to check (drawn at random with ``seed``; all when the tensor is smaller).
        eps: the finite-difference step, relative to ``max(1, |value|)`` of each entry.
        indices: flat indices to check instead of random ones.
        integrator, spp, settings: the renderer (:func:`lumigrad.render`). A Monte Carlo integrator renders
            every image with the same random numbers (``seed``, and ``seed_grad = seed`` for the gradient), so
            autograd and the differences see one differentiable estimate; the rasterizer takes ``background``.
        time, animation: render the scene posed at ``time`` seconds of ``animation`` (:meth:`Scene.at`;
            ``None``: the first), so that an animation's keyframe values get gradients; ``None``: the scene as it is.

    Returns:
        a :class:`GradientCheck`. Visibility changes are included: the render antialiases silhouettes, so
        vertex and camera gradients are checked against a loss that is continuous in them.
    """
    params = scene.parameters()
    if name not in params:
        raise ValueError(f"no scene parameter named {name!r}; the scene has {', '.join(list(params)[:8])}"
                         + (" ..." if len(params) > 8 else ""))
    check_positive_int(samples, "samples")
    eps = check_number(eps, "eps", lo=0.0, lo_open=True)
    original = params[name]
    value = original.detach().clone()
    g = torch.Generator().manual_seed(seed)
    options = dict(settings)
    if "background" in integrator_settings(integrator):
        options["background"] = background
    if integrator_class(integrator).monte_carlo:
        options.update(spp=spp, seed=seed)
        if "seed_grad" in integrator_settings(integrator):
            options.setdefault("seed_grad", seed)

    def posed() -> Scene:
        return scene if time is None else scene.at(time, animation)

    with torch.no_grad():
        probe = render(posed(), camera, integrator=integrator, **options).rgba
    weights = torch.rand(probe.shape, generator=g, dtype=probe.dtype)
    if indices is None:
        count = min(samples, value.numel())
        indices = torch.randperm(value.numel(), generator=g)[:count].tolist()

    def loss(v: torch.Tensor) -> torch.Tensor:
        scene[name] = v
        return (render(posed(), camera, integrator=integrator, **options).rgba * weights).sum()

    try:
        leaf = value.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(loss(leaf), leaf)
        analytic = grad.reshape(-1)[indices].double()
        numeric = []
        with torch.no_grad():
            for i in indices:
                step = eps * max(1.0, abs(float(value.reshape(-1)[i])))
                up, down = value.clone(), value.clone()
                up.view(-1)[i] += step
                down.view(-1)[i] -= step
                numeric.append((float(loss(up)) - float(loss(down))) / (2 * step))
    finally:
        scene[name] = original
    numeric = torch.tensor(numeric, dtype=torch.float64)
    cosine = float(torch.nn.functional.cosine_similarity(analytic, numeric, dim=0, eps=1e-30))
    scale = max(float(analytic.abs().max()), float(numeric.abs().max()), 1e-30)
    rel = (analytic - numeric).abs() / torch.maximum(torch.maximum(analytic.abs(), numeric.abs()),
                                                     torch.tensor(1e-3 * scale, dtype=torch.float64))
    return GradientCheck(name, list(indices), analytic, numeric, cosine, float(rel.max()))
