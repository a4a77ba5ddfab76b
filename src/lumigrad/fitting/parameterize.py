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
``unit``        the quaternions, any length                  ``u / |u|`` per row: keyframe rotations stay
                                                             unit quaternions through every step
``lens``        the distortion coefficients                  the coefficients, projected back (radial terms
                                                             scaled towards 0) whenever a step would fold
                                                             the lens inside the image
=============== ============================================ =================================================

Each map is registered once in :data:`MAPS` (:func:`register_map`), with the parameter kinds it suits
(:class:`lumigrad.scene.ParamInfo`): ``large_steps`` takes ``vertices``, ``pose`` the rigid transforms
(``to_world``, ``world_to_cam``), ``intrinsics`` camera ``K`` (``intrinsics``), ``unit`` keyframe rotations
(``keyframe_rotation``), ``lens`` distortion coefficients (``distortion``), the others any parameter. A
new map is one file: a function ``build(request: MapRequest) -> Parameterization`` registered with
``register_map("name", build, kinds=...)``; ``[[optimize]] map = "name"`` then uses it.

``init`` sets the starting value before the map: a number or nested list (broadcast to the parameter's
shape), or a table ``{scale = s, add = a, noise = sigma, seed = k}`` giving ``x * s + a + sigma * N(0, 1)``.
A starting value the map cannot represent (``sigmoid`` outside [0, 1], ``exp`` below 0) is refused: clamping
it would start the fit at a different value than asked for, stuck where the map saturates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple

import torch

from ..conventions import compose_world_to_cam, matrix_to_rotation_6d, rotation_6d_to_matrix
from ..optim.large_steps import LargeSteps
from ..registry import Registry
from ..scene import params as P
from ..scene.params import ParamInfo
from .config import short_repr

__all__ = ["MAPS", "MapRequest", "MapType", "Parameterization", "apply_init", "make_parameterization",
           "register_map"]


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


@dataclass
class MapRequest:
    """What a map's ``build`` gets: the parameter, its starting value and the group's options.

    Attributes:
        names: the scene names of the tensor (several when it is shared); ``name`` is the first.
        start: the starting value (detached).
        where: the config key (``optimize[0]``), for messages.
        info: what the parameter is (``scene.param_info(name)``), or ``None`` when unknown.
        lambda_: the group's ``lambda`` (large-steps smoothing weight).
        shared: the group's ``shared`` flag (fit one value for every view of a batched camera).
        faces: the mesh's faces (default: the owner's, from ``info``).
        size: the camera's ``(width, height)`` (default: the owner's, from ``info``).
    """

    names: List[str]
    start: torch.Tensor
    where: str
    info: Optional[ParamInfo] = None
    lambda_: float = 19.0
    shared: bool = False
    faces: Optional[torch.Tensor] = None
    size: Optional[Tuple[int, int]] = None

    @property
    def name(self) -> str:
        return self.names[0]


@dataclass(frozen=True)
class MapType:
    """A registered map: ``build(request) -> Parameterization``; the parameter ``kinds`` it suits (``None``:
    every parameter), described by ``suits`` in the message that refuses others; the ``optimizer`` a group
    using it gets when its config names none."""

    name: str
    build: Callable[[MapRequest], Parameterization]
    kinds: Optional[Tuple[str, ...]] = None
    suits: str = ""
    optimizer: str = "adam"


#: Every parameter map, by the name ``[[optimize]] map`` uses.
MAPS: Registry[MapType] = Registry("map")


def register_map(name: str, build: Optional[Callable[[MapRequest], Parameterization]] = None, *,
                 kinds: Optional[Sequence[str]] = None, suits: str = "", optimizer: str = "adam",
                 replace: bool = False):
    """Register the map ``name``; with ``build`` omitted, a decorator.

    Args:
        build: ``build(request: MapRequest) -> Parameterization``; raise ``ValueError`` (starting with
            ``request.where``) for a start it cannot represent.
        kinds: the :data:`lumigrad.scene.PARAM_KINDS` it suits; ``None`` for every parameter.
        suits: what those are, for the refusal (``"mesh vertices (meshes.NAME.verts)"``).
        optimizer: the default optimizer of a group using the map (``"adam"``, ``"adam_uniform"``, ``"sgd"``).
        replace: replace an existing map of that name.
    """
    if build is None:
        return lambda fn: register_map(name, fn, kinds=kinds, suits=suits, optimizer=optimizer, replace=replace)
    if kinds is not None:
        kinds = tuple(kinds)
        bad = [k for k in kinds if k not in P.PARAM_KINDS]
        if bad:
            raise ValueError(f"map {name!r}: {bad[0]!r} is not a parameter kind; use one of {', '.join(P.PARAM_KINDS)}")
    MAPS.register(name, MapType(name, build, kinds, suits or f"{', '.join(kinds or ())} parameters", optimizer),
                  replace=replace)
    return build


def make_parameterization(kind: str, names: List[str], start: torch.Tensor, where: str, *,
                          info: Optional[ParamInfo] = None, faces: Optional[torch.Tensor] = None,
                          size: Optional[Tuple[int, int]] = None, lambda_: float = 19.0,
                          shared: bool = False) -> Parameterization:
    """The :class:`Parameterization` ``kind`` (a registered map) of the parameter ``names`` starting at ``start``.

    Args:
        kind: the name of a map in :data:`MAPS` (the module docstring lists the built-in ones).
        names: the scene names of the tensor (several when it is shared).
        start: the starting value.
        where: the config key, for messages.
        info: what the parameter is (``scene.param_info(names[0])``); maps that suit only some kinds of
            parameters refuse one without it.
        faces: the mesh's faces, for ``large_steps`` (default: from ``info``'s owner).
        size: the camera's ``(width, height)``, for ``intrinsics`` (default: from ``info``'s owner).
        lambda_: the large-steps smoothing weight.
        shared: for ``intrinsics``, fit one ``K`` for every view of a batched camera.

    Raises:
        ValueError: an unknown map, or a map that does not suit the parameter (naming it and ``where``).
    """
    entry = MAPS.get(kind)
    if entry is None:
        raise ValueError(f"{where}: unknown map {kind!r}; choose one of {MAPS.choices()}")
    if entry.kinds is not None and (info is None or info.kind not in entry.kinds):
        raise ValueError(f"{where}: map {kind!r} is for {entry.suits}; {names[0]!r} is not")
    return entry.build(MapRequest(list(names), start.detach(), where, info, lambda_, shared, faces, size))


# --------------------------------------------------------------------------------------- built-in maps
@register_map("identity")
def _identity(r: MapRequest) -> Parameterization:
    leaf = r.start.clone().requires_grad_(True)
    return Parameterization(r.names, [leaf], lambda: leaf)


@register_map("sigmoid")
def _sigmoid(r: MapRequest) -> Parameterization:
    start = r.start
    _check_domain(start, r.where, r.name, "sigmoid", "in [0, 1]", (start >= 0) & (start <= 1))
    leaf = torch.logit(start.clamp(1e-4, 1 - 1e-4)).requires_grad_(True)
    return Parameterization(r.names, [leaf], lambda: torch.sigmoid(leaf))


@register_map("exp")
def _exp(r: MapRequest) -> Parameterization:
    start = r.start
    _check_domain(start, r.where, r.name, "exp", ">= 0", start >= 0)
    leaf = start.clamp_min(1e-8).log().requires_grad_(True)
    return Parameterization(r.names, [leaf], lambda: leaf.exp())


@register_map("large_steps", kinds=(P.VERTICES,), suits="mesh vertices (meshes.NAME.verts)",
              optimizer="adam_uniform")
def _large_steps(r: MapRequest) -> Parameterization:
    faces = r.faces if r.faces is not None else getattr(r.info.obj, "faces", None)
    if faces is None:
        raise ValueError(f"{r.where}: map 'large_steps' is for mesh vertices (meshes.NAME.verts); {r.name!r} has no "
                         "faces")
    ls = LargeSteps(r.start, faces, lambda_=r.lambda_)
    return Parameterization(r.names, [ls.parameter], ls.verts)


@register_map("pose", kinds=P.POSE_KINDS,
              suits="rigid transforms (cameras.NAME.world_to_cam, meshes.NAME.to_world)")
def _pose(r: MapRequest) -> Parameterization:
    start = r.start
    if start.shape[-2:] != (4, 4):
        raise ValueError(f"{r.where}: map 'pose' is for rigid transforms [..., 4, 4]; {r.name!r} has shape "
                         f"{tuple(start.shape)}")
    r6 = matrix_to_rotation_6d(start[..., :3, :3]).clone().requires_grad_(True)
    t = start[..., :3, 3].clone().requires_grad_(True)
    return Parameterization(r.names, [r6, t], lambda: compose_world_to_cam(rotation_6d_to_matrix(r6), t))


@register_map("intrinsics", kinds=(P.INTRINSICS,), suits="camera matrices (cameras.NAME.K)")
def _intrinsics_map(r: MapRequest) -> Parameterization:
    size = r.size
    if size is None and r.info is not None and r.info.obj is not None:
        size = (r.info.obj.width, r.info.obj.height)
    if size is None:
        raise ValueError(f"{r.where}: map 'intrinsics' is for camera matrices (cameras.NAME.K) and needs the "
                         f"camera's size; {r.name!r} has none")
    return _intrinsics(r.names, r.start, size, r.shared)


@register_map("unit", kinds=(P.KEYFRAME_ROTATION,),
              suits="keyframe rotations (animations.NAME.TARGET.rotation)")
def _unit(r: MapRequest) -> Parameterization:
    if r.start.dim() != 2 or r.start.shape[-1] != 4:
        raise ValueError(f"{r.where}: map 'unit' is for LINEAR / STEP keyframe rotations [N, 4]; {r.name!r} has shape "
                         f"{tuple(r.start.shape)} (CUBICSPLINE keys hold tangents too: use map 'identity')")
    norm = r.start.norm(dim=-1, keepdim=True)
    if not bool((norm > 1e-12).all()):
        raise ValueError(f"{r.where}: map 'unit' normalises quaternions, and the starting value of {r.name!r} has "
                         f"{int((norm <= 1e-12).sum())} of length 0; set init to rotations")
    leaf = (r.start / norm).clone().requires_grad_(True)
    return Parameterization(r.names, [leaf], lambda: leaf / leaf.norm(dim=-1, keepdim=True).clamp_min(1e-12))


@register_map("lens", kinds=(P.DISTORTION,), suits="lens distortion coefficients (cameras.NAME.distortion)")
def _lens(r: MapRequest) -> Parameterization:
    """The coefficients themselves, projected back into the lenses that do not fold inside the image: when a step
    makes the radial model stop growing before the image corners (two directions on one pixel; the next render
    would refuse it), the radial coefficients are scaled towards 0 (no distortion, which never folds) by the
    largest factor that keeps the corners 2 % inside the fold radius. So a calibration can start from k = 0 with
    plain Adam."""
    camera = r.info.obj if r.info is not None else None
    if camera is None or not hasattr(camera, "distortion_model"):
        raise ValueError(f"{r.where}: map 'lens' needs the camera that owns {r.name!r}")
    leaf = r.start.clone().requires_grad_(True)
    radial = [0, 1, 4] if camera.distortion_model == "opencv" else [0, 1, 2, 3]

    def value() -> torch.Tensor:
        with torch.no_grad():
            _unfold(leaf, radial, camera)
        return leaf

    return Parameterization(r.names, [leaf], value)


def _unfold(coeffs: torch.Tensor, radial: List[int], camera) -> None:
    """Scale the radial entries of ``coeffs`` (in place) so that the radial model does not fold inside the image."""
    from ..cameras.distortion import fold_radius
    from ..cameras.projection import pixel_rays

    K, _ = camera.flat()
    corners = torch.tensor([[0.0, 0.0], [camera.width, 0.0], [0.0, camera.height], [camera.width, camera.height]],
                           dtype=K.dtype, device=K.device)
    need = 1.02 * pixel_rays(K.detach()[:, None], corners[None])[..., :2].norm(dim=-1).amax()
    flat = coeffs.reshape(-1, coeffs.shape[-1])

    def folds(c: torch.Tensor) -> bool:
        return bool((fold_radius(c.to(K.dtype), camera.distortion_model) <= need).any())

    if not folds(flat):
        return
    lo, hi = 0.0, 1.0  # scale 0 (no radial distortion) never folds; find the largest scale that does not
    for _ in range(30):
        mid = (lo + hi) / 2
        trial = flat.clone()
        trial[:, radial] *= mid
        lo, hi = (mid, hi) if not folds(trial) else (lo, mid)
    flat[:, radial] *= lo
    coeffs.copy_(flat.reshape(coeffs.shape))


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

