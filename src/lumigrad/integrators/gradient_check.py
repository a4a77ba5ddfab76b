"""Check any scene parameter's gradient against finite differences of the rendered image, on your own scene.

``check_scene_gradient(scene, camera, name)`` renders ``loss = sum(w * render(scene, camera))`` with fixed
random pixel weights ``w``, takes the whole of ``d loss / d scene[name]`` by autograd, and compares it with central
differences of the same loss, entry by entry and along random directions. It is what ``lumigrad gradcheck`` runs.

What makes the verdict trustworthy (each a failure mode seen with a plain check):

* **Precision.** The check renders in float64 when the scene allows (every floating tensor of the scene and the
  camera cast for the check, restored after): a float32 loss over thousands of pixels has rounding noise larger
  than the change a texel step makes, and differences of it were exactly 0.
* **Steps from the parameter's scale.** Each entry's step is ``eps * max(|x_i|, rms(x))``: a texel in [0, 1], a
  vertex in metres and a light intensity of 1000 each get a step their own size.
* **Entries where the gradient is.** Half the checked entries are those with the largest autograd gradient, half
  random: checking 8 random vertices of a mesh mostly compares 0 with 0.
* **Kinks.** At a kink of the loss (a factor clamped at its bound, a texel centre) autograd returns one of the
  one-sided derivatives; where the one-sided differences disagree with each other and the central one with
  autograd, the one-sided difference closer to autograd is compared instead.
* **A verdict on direction and size.** Pass needs the cosine of the checked entries >= ``cosine_tol``, every entry
  within ``rtol`` relative error (with an absolute floor of ``1e-3`` of the largest gradient entry), and the
  derivative along two directions over all entries within ``rtol`` (the first up the autograd gradient, random signs
  where it is zero, which catches a wrong scale or sign without cancellation; the second with random signs, which
  catches a wrong entry the sample missed when it carries a visible part of ``||g * v||``). Entries exactly 0 or
  1, usually on a clamp, are left out of the directions and checked only when sampled. An entry 69 % off fails
  even when the cosine is high.
* **Monte Carlo estimators over seeds** (``seeds > 1``). With one seed, autograd and the differences see one
  differentiable estimate; where the sampling itself depends on the parameter (a glossy lobe's directions and its
  choice against the diffuse one move with roughness, metallic, ior) the path tracer's gradient is the detached-
  sampling estimator (unbiased, as Mitsuba's ``prb``), which is not the derivative of that one estimate, and the
  differences of one estimate jump where a lobe choice flips. Both are unbiased for the derivative of the
  expected image, so with ``seeds`` independent seeds (the same seed for a render and its differences) the check
  compares their means: an entry or direction passes within ``rtol`` or within :attr:`GradientCheck.z` standard
  errors of the mean difference (``standard_errors``; Student's t at 99.9 %: a gradient check that cries wolf is
  not trusted, and more seeds narrow it), the cosine is not required, and the default step is ``1e-2`` of the
  entry's scale (fewer flips, each difference less noisy; the bias is second order).

Its old path ``lumigrad.scene.gradient_check`` still works, deprecated (:mod:`lumigrad.integrators.deprecated`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch

from .._checks import check_number, check_positive_int
from ..cameras.camera import Camera
from ..scene.scene import Scene
from .base import integrator_class, integrator_settings
from .dispatch import render

__all__ = ["GradientCheck", "check_scene_gradient"]

#: Student's t at 0.9995 (99.9 % two-sided) for 1 ... 30 degrees of freedom.
_T_9995 = (636.6, 31.60, 12.92, 8.610, 6.869, 5.959, 5.408, 5.041, 4.781, 4.587, 4.437, 4.318, 4.221, 4.140, 4.073,
           4.015, 3.965, 3.922, 3.883, 3.850, 3.819, 3.792, 3.768, 3.745, 3.725, 3.707, 3.690, 3.674, 3.659, 3.646)


@dataclass
class GradientCheck:
    """The result of :func:`check_scene_gradient`.

    Attributes:
        name: the parameter; indices: flat indices of the checked entries.
        analytic, numeric: autograd and central-difference values of those entries (float64).
        steps: the finite-difference step of each entry.
        cosine: cosine similarity of ``analytic`` and ``numeric``.
        max_relative_error: the largest ``|a - n| / max(|a|, |n|, floor)``, ``floor`` = 1e-3 of the largest autograd
            entry of the whole gradient.
        directional: ``(autograd, central difference)`` change of the loss along each direction ``v`` (the first:
            the sign of each entry's gradient, a random sign where it is zero; the others: random signs; times a
            tenth of the entry's step); directional_floors: 1e-3 of ``||g * v||`` each, their absolute floors.
        precision: ``"float64"`` or the scene's own dtype (when it could not be rendered in float64).
        rtol, cosine_tol: the tolerances of :attr:`passed`.
        seeds: the Monte Carlo seeds averaged (1: one estimate); standard_errors, directional_standard_errors: with
            ``seeds > 1`` the standard error of the mean autograd-minus-difference per entry and per direction
            (None with one seed).
    """

    name: str
    indices: List[int]
    analytic: torch.Tensor
    numeric: torch.Tensor
    steps: List[float]
    cosine: float
    max_relative_error: float
    directional: List[Tuple[float, float]]
    precision: str
    floor: float
    directional_floors: List[float]
    rtol: float = 0.05
    cosine_tol: float = 0.99
    seeds: int = 1
    standard_errors: Optional[torch.Tensor] = None
    directional_standard_errors: Optional[List[float]] = None

    @property
    def z(self) -> float:
        """With ``seeds > 1``: how many standard errors of the mean difference an entry or direction may be off,
        Student's t at 99.9 % two-sided for ``seeds - 1`` degrees of freedom (the spread is estimated from the
        seeds themselves: 5.4 at 8 seeds, 4.1 at 16, 3.6 at 32)."""
        dof = self.seeds - 1
        return _T_9995[dof - 1] if dof <= len(_T_9995) else 3.29 + 2.5 / dof

    def _entry_ok(self) -> torch.Tensor:
        ok = self.relative_errors() <= self.rtol
        if self.standard_errors is not None:
            ok = ok | ((self.analytic - self.numeric).abs() <= self.z * self.standard_errors)
        return ok

    def _direction_ok(self) -> List[bool]:
        se = self.directional_standard_errors or [0.0] * len(self.directional)
        return [e <= self.rtol or abs(a - n) <= self.z * s
                for e, (a, n), s in zip(self.directional_errors(), self.directional, se)]

    def relative_errors(self) -> torch.Tensor:
        """Per checked entry: ``|a - n| / max(|a|, |n|, floor)``."""
        denom = torch.maximum(torch.maximum(self.analytic.abs(), self.numeric.abs()),
                              torch.tensor(self.floor, dtype=torch.float64))
        return (self.analytic - self.numeric).abs() / denom

    def directional_errors(self) -> List[float]:
        """Per direction: ``|a - n| / max(|a|, |n|, floor)``, ``floor`` = 1e-3 of ``||g * v||``."""
        return [abs(a - n) / max(abs(a), abs(n), f) for (a, n), f in zip(self.directional, self.directional_floors)]

    @property
    def passed(self) -> bool:
        """Direction (cosine; not with ``seeds > 1``), every checked entry and every random direction within
        tolerance (or, with ``seeds > 1``, within ``Z`` standard errors)."""
        cosine_ok = self.cosine >= self.cosine_tol or self.seeds > 1
        return cosine_ok and bool(self._entry_ok().all()) and all(self._direction_ok())

    def reasons(self) -> List[str]:
        """Why the check failed (empty when it passed)."""
        out = []
        if self.cosine < self.cosine_tol and self.seeds == 1:
            out.append(f"cosine {self.cosine:.4f} < {self.cosine_tol}")
        bad = int((~self._entry_ok()).sum())
        if bad:
            within = f"{self.rtol:.0%}" + (f" and {self.z:.3g} standard errors" if self.seeds > 1 else "")
            out.append(f"{bad} of {len(self.indices)} entries off by more than {within}")
        for k, (e, ok) in enumerate(zip(self.directional_errors(), self._direction_ok())):
            if not ok:
                out.append(f"random direction {k}: autograd {self.directional[k][0]:.6g} vs finite differences "
                           f"{self.directional[k][1]:.6g} ({e:.1%} off)")
        return out

    def table(self, worst: Optional[int] = None) -> str:
        """The checked entries, worst first (``worst``: only that many), and the random directions."""
        rel = self.relative_errors()
        order = torch.argsort(rel, descending=True).tolist()[:worst]
        se = self.standard_errors
        rows = [f"{'entry':>8} {'autograd':>14} {'finite diff':>14} {'step':>9} {'rel. error':>11}"
                + (f" {'std. err.':>11}" if se is not None else "")]
        for k in order:
            rows.append(f"{self.indices[k]:>8} {float(self.analytic[k]):>14.6g} {float(self.numeric[k]):>14.6g} "
                        f"{self.steps[k]:>9.2e} {float(rel[k]):>11.2e}"
                        + (f" {float(se[k]):>11.2e}" if se is not None else ""))
        dse = self.directional_standard_errors
        for k, ((a, n), e) in enumerate(zip(self.directional, self.directional_errors())):
            rows.append(f"{'dir ' + str(k):>8} {a:>14.6g} {n:>14.6g} {'':>9} {e:>11.2e}"
                        + (f" {dse[k]:>11.2e}" if dse is not None else ""))
        return "\n".join(rows)


def check_scene_gradient(scene: Scene, camera: Camera, name: str, *, samples: int = 8, eps: Optional[float] = None,
                         seed: int = 0, background: float = 0.0,
                         indices: Optional[List[int]] = None, integrator: str = "raster", spp: int = 1,
                         time: Optional[float] = None, animation: Optional[str] = None, precision: str = "auto",
                         rtol: float = 0.05, cosine_tol: float = 0.99, directions: int = 2, seeds: int = 1,
                         **settings) -> GradientCheck:
    """Compare autograd with central differences for ``scene[name]`` (see the module docstring for the method).

    Args:
        scene, camera: what to render (:func:`lumigrad.render`).
        name: a key of ``scene.parameters()``, e.g. ``"lights.key.position"``.
        samples: how many entries to check one by one (half the largest autograd entries, half random; all when
            the tensor is smaller).
        eps: the finite-difference step relative to each entry's scale ``max(|x_i|, rms(x))``; default 1e-5 in
            float64, 3e-3 in float32, 1e-2 with ``seeds > 1``.
        indices: flat indices to check instead of chosen ones.
        integrator, spp, settings: the renderer (:func:`lumigrad.render`). A Monte Carlo integrator renders
            every image with the same random numbers (``seed``, and ``seed_grad = seed`` for the gradient), so
            autograd and the differences see one differentiable estimate; the rasterizer takes ``background``.
        time, animation: render the scene posed at ``time`` seconds of ``animation`` (:meth:`Scene.at`;
            ``None``: the first), so that an animation's keyframe values get gradients; ``None``: the scene as it is.
        precision: ``"auto"`` (float64 when the scene renders in it, else its own dtype), ``"float64"`` or
            ``"native"``.
        rtol, cosine_tol: the tolerances of :attr:`GradientCheck.passed`.
        directions: random directions (over all entries) whose derivative is also checked.
        seeds: with a Monte Carlo integrator, the independent estimates (seeds ``seed, seed + 1, ...``) whose
            means are compared (the module docstring: where sampling depends on the parameter one estimate's
            gradient is not the derivative of that estimate); 1: one estimate, compared exactly.

    Returns:
        a :class:`GradientCheck`; the scene is left as it was. Visibility changes are included: the render
        antialiases silhouettes, so vertex and camera gradients are checked against a loss continuous in them.
    """
    params = scene.parameters()
    if name not in params:
        raise ValueError(f"no scene parameter named {name!r}; the scene has {', '.join(list(params)[:8])}"
                         + (" ..." if len(params) > 8 else "") + " (lumigrad gradcheck SCENE --list shows all)")
    check_positive_int(samples, "samples")
    if eps is not None:
        eps = check_number(eps, "eps", lo=0.0, lo_open=True)
    if precision not in ("auto", "float64", "native"):
        raise ValueError(f"precision must be 'auto', 'float64' or 'native'; got {precision!r}")
    if not params[name].is_floating_point():
        raise ValueError(f"scene parameter {name!r} is {params[name].dtype}, not a floating tensor: it has no gradient")
    rtol = check_number(rtol, "rtol", lo=0.0, lo_open=True)
    cosine_tol = check_number(cosine_tol, "cosine_tol", lo=-1.0, hi=1.0)
    if isinstance(directions, bool) or not isinstance(directions, int) or directions < 0:
        raise ValueError(f"directions must be an integer >= 0; got {directions!r}")
    check_positive_int(seeds, "seeds")
    if seeds > 1 and not integrator_class(integrator).monte_carlo:
        raise ValueError(f"seeds > 1 needs a Monte Carlo integrator (the {integrator!r} image is one deterministic "
                         f"function of the parameters); got seeds={seeds}")
    options = dict(settings)
    if "background" in integrator_settings(integrator):
        options["background"] = background
    if integrator_class(integrator).monte_carlo:
        options.update(spp=spp, seed=seed)
        if "seed_grad" in integrator_settings(integrator):
            options.setdefault("seed_grad", seed)
    originals = dict(params)
    try:
        camera, used = _cast_for_check(scene, camera, originals, precision,
                                       lambda cam: render(_posed(scene, time, animation), cam, integrator=integrator,
                                                          **options))
        return _check(scene, camera, name, samples, eps, seed, indices, integrator, options, time, animation, used,
                      rtol, cosine_tol, directions, seeds)
    finally:
        for key, value in originals.items():
            scene[key] = value


def _posed(scene: Scene, time, animation) -> Scene:
    return scene if time is None else scene.at(time, animation)


def _cast_for_check(scene: Scene, camera: Camera, originals: Dict[str, torch.Tensor], precision: str, probe):
    """Cast every floating scene tensor and the camera to float64 (``auto``: unless the render then fails)."""
    native = str(originals[next(iter(originals))].dtype).replace("torch.", "") if originals else "float32"
    if precision == "native":
        return camera, native
    for key, value in originals.items():
        if value.is_floating_point():
            scene[key] = value.detach().double()
    cam64 = camera.to(dtype=torch.float64)
    try:
        with torch.no_grad():
            probe(cam64)
    except (TypeError, RuntimeError, ValueError):
        if precision == "float64":
            raise
        for key, value in originals.items():
            scene[key] = value
        return camera, native
    return cam64, "float64"


def _autograd_gradient(loss: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
    """``d loss / d leaf``, zeros when the render does not depend on it (a seam the tests use to plant a wrong
    gradient)."""
    if not loss.requires_grad:
        return torch.zeros_like(leaf)
    (grad,) = torch.autograd.grad(loss, leaf, allow_unused=True)
    return torch.zeros_like(leaf) if grad is None else grad


def _check(scene, camera, name, samples, eps, seed, indices, integrator, options, time, animation, precision,
           rtol, cosine_tol, directions, seeds) -> GradientCheck:
    g = torch.Generator().manual_seed(seed)
    value = scene[name].detach().clone()
    float64 = value.dtype == torch.float64
    eps = eps if eps is not None else (1e-2 if seeds > 1 else 1e-5 if float64 else 3e-3)
    with torch.no_grad():
        probe = render(_posed(scene, time, animation), camera, integrator=integrator, **options).rgba
    weights = torch.rand(probe.shape, generator=g, dtype=torch.float64).to(probe.dtype)
    flat = value.reshape(-1)
    scale = float(flat.double().square().mean().sqrt()) if flat.numel() else 0.0
    steps = eps * torch.maximum(flat.double().abs(), torch.tensor(scale if scale > 0 else 1.0, dtype=torch.float64))
    runs, plan = [], None
    for k in range(seeds):  # one estimate per seed: its gradient and its differences (the same random numbers)
        seeded = dict(options)
        if k:
            seeded["seed"] = seed + k
            if "seed_grad" in seeded:
                seeded["seed_grad"] = seed + k

        def loss(v: torch.Tensor, seeded=seeded) -> torch.Tensor:
            scene[name] = v
            return (render(_posed(scene, time, animation), camera, integrator=integrator, **seeded).rgba
                    * weights).sum()

        leaf = value.clone().requires_grad_(True)
        grad = _autograd_gradient(loss(leaf), leaf).detach().reshape(-1).double()
        if plan is None:  # the entries, steps and directions: from the first estimate, kept for the others
            indices = indices if indices is not None else _choose_entries(grad, samples, g)
            plan = _plan(loss, value, grad, steps, indices, directions, g, float64, 1.0 if seeds > 1 else 0.1)
        runs.append(_differences(loss, value, grad, indices, plan, rtol, plan.pop("base", None), kinks=seeds == 1))
    floor = 1e-3 * float(runs[0][0].abs().max()) if runs[0][0].numel() else 0.0
    floor = max(floor, 1e-300)
    grads = torch.stack([r[0] for r in runs])  # [seeds, entries of the tensor]
    numeric = torch.stack([torch.tensor(r[1], dtype=torch.float64) for r in runs])  # [seeds, checked entries]
    analytic_runs = grads[:, indices]
    directional_runs = torch.tensor([r[2] for r in runs], dtype=torch.float64).reshape(seeds, -1, 2)
    analytic, numeric_mean = analytic_runs.mean(0), numeric.mean(0)
    directional = [(float(a), float(n)) for a, n in directional_runs.mean(0)]
    standard_errors = directional_se = None
    if seeds > 1:
        standard_errors = (analytic_runs - numeric).std(0) / seeds ** 0.5
        directional_se = [float(x) for x in (directional_runs[..., 0] - directional_runs[..., 1]).std(0)
                          / seeds ** 0.5]
    cosine = float(torch.nn.functional.cosine_similarity(analytic, numeric_mean, dim=0, eps=1e-300))
    if float(analytic.abs().max()) <= floor and float(numeric_mean.abs().max()) <= floor:
        cosine = 1.0  # every checked entry is zero both ways: nothing disagrees
    directional_floors = [max(1e-3 * float((grads.mean(0) * v).norm()), 1e-300) for v in plan["directions"]]
    result = GradientCheck(name, list(indices), analytic, numeric_mean, plan["entry_steps"], cosine, 0.0,
                           directional, precision, floor, directional_floors, rtol, cosine_tol, seeds,
                           standard_errors, directional_se)
    result.max_relative_error = float(result.relative_errors().max()) if indices else 0.0
    return result


def _plan(loss, value, grad, steps, indices, directions, g, float64, direction_step) -> dict:
    """The finite-difference step of each checked entry and the directions ``v`` over all entries, fixed from the
    first estimate's gradient ``grad`` and loss (each step long enough to stand above the loss's rounding noise;
    a direction's ``direction_step`` of the entries' steps)."""
    flat = value.reshape(-1)
    with torch.no_grad():
        base = float(loss(value))
    noise = abs(base) * (1e-15 if float64 else 1e-6) + 1e-300  # the loss's rounding noise, about
    # lengthen a step whose change of the loss would not stand well above the rounding noise
    entry_steps = [float(steps[i]) * min(max(1e4 * noise / max(abs(float(grad[i])) * float(steps[i]), 1e-300), 1.0),
                                         1e3) for i in indices]
    # entries exactly 0 or 1 most often sit on a clamp (a factor, a texel, a weight): a direction that moves
    # several of them one way or the other has no derivative, so they stay put (they are checked one by one)
    free = ((flat != 0) & (flat != 1)).double()
    vs = []
    for k in range(directions):
        # up the gradient on the entries that have one (no cancellation: the expected change is sum |g_i h_i|),
        # random signs on the others (an entry autograd wrongly zeroed moves too); direction k > 0 moves a random
        # half of the entries. One deterministic estimate: a smaller step than the entries' (fewer cross a kink, a
        # texel centre); over seeds the entries' step (a shorter one is noisier where a lobe choice flips).
        signs = (torch.randint(0, 2, (flat.numel(),), generator=g) * 2 - 1).double()
        if k == 0:
            signs = torch.where(grad != 0, torch.sign(grad), signs)
        v = signs * steps * direction_step * free
        expected = float(grad @ v)
        if 0 < abs(expected) < 1e4 * noise:  # stand well above the rounding noise
            v = v * min(1e4 * noise / abs(expected), 1e3)
        for _ in range(12):  # a move that leaves the parameter's valid range (a weight below 0): halve it
            delta = v.to(value.dtype).reshape(value.shape)
            if _loss_or_none(loss, value + delta) is not None and _loss_or_none(loss, value - delta) is not None:
                vs.append(v)
                break
            v = v / 2
    return {"entry_steps": entry_steps, "directions": vs, "base": base}


def _differences(loss, value, grad, indices, plan, rtol, base=None, kinks=True) -> tuple:
    """``(grad, numeric [checked entries], [(autograd, central difference)] per direction)`` of one estimate
    (``base``: its loss at ``value`` where already known)."""
    flat = value.reshape(-1)
    numeric, directional = [], []
    with torch.no_grad():
        base = float(loss(value)) if base is None else base
        for i, h in zip(indices, plan["entry_steps"]):
            delta = torch.zeros_like(flat)
            delta[i] = h
            numeric.append(_difference(loss, value, delta.reshape(value.shape), base, float(grad[i]) * h, rtol,
                                       kinks) / h)
        for v in plan["directions"]:
            delta = v.to(value.dtype).reshape(value.shape)
            up, down = _loss_or_none(loss, value + delta), _loss_or_none(loss, value - delta)
            directional.append((float(grad @ v), (up - down) / 2.0))
    return grad, numeric, directional


def _difference(loss, value: torch.Tensor, delta: torch.Tensor, base: float, expected: float, rtol: float,
                kinks: bool = True) -> float:
    """The change of the loss along ``delta`` to first order: the central difference, unless ``value`` sits on a
    kink of the loss (a clamp at a parameter's bound, a texel centre), where the one-sided differences differ and
    autograd returns one of them: then the one-sided difference closer to ``expected`` (autograd's value).
    ``kinks`` False: the central difference always (a Monte Carlo estimate's sides differ by noise, and picking the
    side closer to autograd would bias the check toward passing)."""
    up, down = _loss_or_none(loss, value + delta), _loss_or_none(loss, value - delta)
    if up is None or down is None:  # one side leaves the parameter's domain (a weight below 0): one-sided
        if up is None and down is None:
            raise ValueError("both sides of the finite-difference step leave the parameter's valid range; pass a "
                             "smaller eps")
        return up - base if down is None else base - down
    central = (up - down) / 2.0
    if not kinks:
        return central
    forward, backward = up - base, base - down
    scale = max(abs(forward), abs(backward), 1e-300)
    if abs(forward - backward) > 2 * rtol * scale and abs(central - expected) > rtol * max(abs(central), abs(expected)):
        return min((forward, backward), key=lambda d: abs(d - expected))
    return central


def _loss_or_none(loss, value: torch.Tensor):
    """The loss at ``value``, or ``None`` when the scene refuses ``value`` (outside the parameter's domain)."""
    try:
        return float(loss(value))
    except ValueError:
        return None


def _choose_entries(grad: torch.Tensor, samples: int, g: torch.Generator) -> List[int]:
    """Half the entries with the largest ``|grad|``, half drawn at random from the rest (all when few)."""
    n = grad.numel()
    if n <= samples:
        return list(range(n))
    top = torch.argsort(grad.abs(), descending=True)[: (samples + 1) // 2].tolist()
    rest = torch.ones(n, dtype=torch.bool)
    rest[top] = False
    candidates = torch.nonzero(rest).reshape(-1)
    drawn = candidates[torch.randperm(candidates.numel(), generator=g)[: samples - len(top)]].tolist()
    return sorted(top + drawn)
