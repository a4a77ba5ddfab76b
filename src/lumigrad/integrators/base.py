"""The integrator seam: the protocol every renderer satisfies, its result, and the registry by name.

An *integrator* turns a :class:`~lumigrad.Scene` seen by a :class:`~lumigrad.Camera` into a
:class:`RenderOutput`: colour, alpha and named buffers (AOVs). The raster pipeline is the first one
(:mod:`lumigrad.integrators.raster`); path tracers, volume and splat renderers are further subclasses of
:class:`Integrator` registered under their own name. :func:`lumigrad.render` looks an integrator up with
:func:`get_integrator` and calls its :meth:`Integrator.render`.

Adding a renderer is one file::

    from lumigrad.integrators import Integrator, RenderOutput, register_integrator

    @register_integrator("flat_white")
    class FlatWhite(Integrator):
        aov_names = ("mask",)

        def __init__(self, *, level: float = 1.0):      # keyword-only constructor arguments = its settings
            self.level = float(level)

        def render(self, scene, camera, *, aovs=(), spp=1, seed=0):
            shape = camera.batch_shape + (camera.height, camera.width)
            alpha = torch.ones(shape + (1,), dtype=camera.dtype, device=camera.device)
            return RenderOutput(self.level * alpha.expand(shape + (3,)), alpha, {a: alpha for a in aovs})

    lumigrad.render(scene, camera, integrator="flat_white", level=0.5)
"""

from __future__ import annotations

import abc
import inspect
import os
import re
import sys
import warnings
from typing import Any, Callable, ClassVar, Dict, Mapping, Optional, Sequence, Tuple, Type, TypeVar

import torch

__all__ = ["AOV_DOCS", "Integrator", "RenderOutput", "get_integrator", "integrator_names", "integrator_settings",
           "register_integrator", "unregister_integrator"]

#: The AOV (arbitrary output variable) names with a shared meaning. An integrator lists the ones it
#: produces in :attr:`Integrator.aov_names`; each buffer is ``[..., H, W, C]`` (channel last, one tensor
#: per name, never packed with others) unless said otherwise, zero where no surface is seen.
AOV_DOCS: Mapping[str, str] = {
    "depth": "[..., H, W, 1] camera-frame z of the visible surface (distance along the viewing axis)",
    "normal": "[..., H, W, 3] unit world-space shading normal (vertex normals, no normal map), flipped "
              "towards the camera on double-sided geometry",
    "position": "[..., H, W, 3] world-space position of the visible surface",
    "uv": "[..., H, W, 2] texture coordinates of the visible surface (zero on meshes without them)",
    "albedo": "[..., H, W, 3] base colour (linear) of the visible surface's material",
    "mask": "[..., H, W, 1] coverage in [0, 1] (1 where a surface is seen)",
    "face_id": "[..., H, W] int32 index of the visible triangle in the scene's draw order, -1 on the "
               "background (never blended)",
}

#: Channels of each floating-point buffer of :data:`AOV_DOCS` (``face_id`` is an index map ``[..., H, W]``); also
#: their order when they travel together through the raster's antialiasing and lens.
AOV_CHANNELS: Mapping[str, int] = {"depth": 1, "normal": 3, "position": 3, "uv": 2, "albedo": 3, "mask": 1}


class RenderOutput:
    """What an integrator returns: colour, alpha and named buffers, each its own tensor.

    Args:
        rgb: colour ``[..., H, W, C]`` (usually ``C = 3``) after the scene's film.
        alpha: coverage ``[..., H, W, 1]`` in [0, 1].
        aovs: the buffers asked for, by name (see :data:`AOV_DOCS`); empty by default.

    ``rgba`` is ``torch.cat([rgb, alpha], -1)``, the ``[..., H, W, C + 1]`` tensor that
    :func:`lumigrad.render` returned before integrators existed (computed on first use, then kept).
    ``out["depth"]`` is ``out.aovs["depth"]``.

    **Deprecated tensor behaviour.** For a deprecation period a ``RenderOutput`` still behaves like
    ``rgba`` where code treats it as a tensor (indexing with anything but an AOV name, tensor attributes
    and methods such as ``.shape`` or ``.sum()``, arithmetic and comparisons, ``torch.*`` functions,
    ``len``, iteration, ``numpy.asarray``), so scripts written for the old return type keep working; each such
    use emits a ``FutureWarning`` (once per line of the calling code, under Python's default warning
    filter) naming ``.rgb``, ``.alpha`` and ``.rgba``. ``isinstance(out, torch.Tensor)`` is ``False``, and
    APIs that require an actual tensor (e.g. ``torch.testing.assert_close``) need ``.rgba``.

    Example:
        >>> out = RenderOutput(torch.zeros(2, 3, 3), torch.ones(2, 3, 1), {"mask": torch.ones(2, 3, 1)})
        >>> tuple(out.rgba.shape), sorted(out.aovs)
        ((2, 3, 4), ['mask'])
    """

    __slots__ = ("rgb", "alpha", "aovs", "_rgba")

    def __init__(self, rgb: torch.Tensor, alpha: torch.Tensor, aovs: Optional[Mapping[str, torch.Tensor]] = None):
        if not isinstance(rgb, torch.Tensor) or not isinstance(alpha, torch.Tensor):
            raise TypeError(f"rgb and alpha must be torch.Tensors; got {type(rgb).__name__} and "
                            f"{type(alpha).__name__}")
        if rgb.dim() < 3 or alpha.shape[-1:] != (1,) or alpha.shape[:-1] != rgb.shape[:-1]:
            raise ValueError(f"rgb must be [..., H, W, C] and alpha [..., H, W, 1] with the same leading dims; got "
                             f"{tuple(rgb.shape)} and {tuple(alpha.shape)}")
        aovs = dict(aovs or {})
        for name, value in aovs.items():
            if not isinstance(name, str) or not isinstance(value, torch.Tensor):
                raise TypeError(f"aovs must map names to tensors; got {type(name).__name__} -> "
                                f"{type(value).__name__}")
        self.rgb, self.alpha, self.aovs = rgb, alpha, aovs
        self._rgba: Optional[torch.Tensor] = None

    @property
    def rgba(self) -> torch.Tensor:
        """``[..., H, W, C + 1]``: colour and alpha in one tensor (the old return type of ``lumigrad.render``)."""
        if self._rgba is None:
            self._rgba = torch.cat([self.rgb, self.alpha], -1)
        return self._rgba

    def __repr__(self) -> str:
        aovs = ", ".join(f"{k}: {tuple(v.shape)}" for k, v in self.aovs.items())
        return f"RenderOutput(rgb: {tuple(self.rgb.shape)}, alpha: {tuple(self.alpha.shape)}, aovs: {{{aovs}}})"

    def __getitem__(self, key):
        if isinstance(key, str):
            if key not in self.aovs:
                have = ", ".join(repr(k) for k in self.aovs) or "none"
                raise KeyError(f"no AOV named {key[:80]!r} in this render; it has: {have} (ask for AOVs with "
                               "render(..., aovs=(...)))")
            return self.aovs[key]
        _warn_tensor_use()
        return self.rgba[key]

    # ---- deprecated: behave like ``rgba`` where a tensor is expected -------------------------------------
    def __getattr__(self, name: str):
        # Only reached for names the class does not define. Private and dunder names are never forwarded
        # (copy, pickle and friends probe them), nor the slots (unset during unpickling).
        if name.startswith("_") or name in RenderOutput.__slots__ or name == "rgba":
            raise AttributeError(name)
        if not hasattr(torch.Tensor, name):
            raise AttributeError(f"'RenderOutput' object has no attribute {name!r} (it has rgb, alpha, rgba, aovs)")
        _warn_tensor_use()
        return getattr(self.rgba, name)

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        _warn_tensor_use()
        return func(*_unwrap(args), **_unwrap(kwargs or {}))

    def __len__(self) -> int:
        _warn_tensor_use()
        return len(self.rgba)

    def __iter__(self):
        _warn_tensor_use()
        return iter(self.rgba)

    def __array__(self, dtype=None, copy=None):
        _warn_tensor_use()
        array = self.rgba.numpy()
        return array if dtype is None else array.astype(dtype)

    __hash__ = object.__hash__


def _forwarding(op: str) -> Callable:
    def method(self, *args):
        _warn_tensor_use()
        return getattr(self.rgba, op)(*_unwrap(args))

    method.__name__ = op
    method.__doc__ = f"Deprecated: ``self.rgba.{op}(...)``."
    return method


for _op in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__", "__rtruediv__",
            "__floordiv__", "__rfloordiv__", "__mod__", "__pow__", "__rpow__", "__matmul__", "__rmatmul__",
            "__neg__", "__pos__", "__abs__", "__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__",
            "__float__", "__int__"):
    setattr(RenderOutput, _op, _forwarding(_op))
del _op

_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
_DEPRECATION = ("lumigrad.render returns a RenderOutput now; using it as the packed [..., H, W, C+1] tensor is "
                "deprecated and will stop working in a future release: use .rgb and .alpha (or .rgba for the "
                "packed tensor)")


def _warn_tensor_use() -> None:
    """One ``FutureWarning`` attributed to the first caller outside this module and torch, so that Python's
    default filter shows it once per line of user code."""
    frame, level = sys._getframe(1), 2
    while frame is not None and (frame.f_code.co_filename == __file__
                                 or frame.f_code.co_filename.startswith(_TORCH_DIR)):
        frame, level = frame.f_back, level + 1
    warnings.warn(_DEPRECATION, FutureWarning, stacklevel=level)


def _unwrap(value):
    if isinstance(value, RenderOutput):
        return value.rgba
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v) for v in value)
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    return value


class Integrator(abc.ABC):
    """A renderer: ``render(scene, camera, *, aovs, spp, seed) -> RenderOutput``.

    Subclass it, give the constructor keyword-only arguments for the integrator's **settings** (validated
    there, raising ``TypeError`` / ``ValueError`` that name the setting), list the AOVs it can produce in
    :attr:`aov_names`, implement :meth:`render`, and register the class with :func:`register_integrator`.
    Integrators own only light transport: the scene's materials, lights and film are read from the scene.
    """

    #: The AOV names this integrator can produce (see :data:`AOV_DOCS` for the shared meanings).
    aov_names: ClassVar[Tuple[str, ...]] = ()
    #: Whether the integrator samples (Monte Carlo): it takes ``spp > 1`` and a ``seed``. Deterministic ones
    #: (the rasterizer) take ``spp = 1``.
    monte_carlo: ClassVar[bool] = False

    @abc.abstractmethod
    def render(self, scene, camera, *, aovs: Sequence[str] = (), spp: int = 1, seed: int = 0) -> RenderOutput:
        """Render ``scene`` seen by ``camera``.

        :func:`lumigrad.render` checks the arguments before calling this: ``scene`` is a
        :class:`~lumigrad.Scene`, ``camera`` a :class:`~lumigrad.Camera` (any batch shape, one image per view),
        ``aovs`` a tuple of distinct names from :attr:`aov_names`, ``spp`` a positive int (samples per pixel)
        and ``seed`` a non-negative int (deterministic integrators may ignore it). The integrator checks what
        it needs of the scene.

        Returns:
            a :class:`RenderOutput` with ``rgb [..., H, W, C]``, ``alpha [..., H, W, 1]`` and exactly the
            buffers named in ``aovs``; ``...`` is ``camera.batch_shape``.
        """


_REGISTRY: Dict[str, Type[Integrator]] = {}
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
_I = TypeVar("_I", bound=Type[Integrator])


def register_integrator(name: str, cls: Optional[_I] = None, *, replace: bool = False):
    """Register the :class:`Integrator` subclass ``cls`` under ``name``; without ``cls``, a class decorator.

    Args:
        name: letters, digits, ``_``, ``.``, ``-``, starting with a letter, at most 64 characters.
        cls: the integrator class; its constructor's keyword arguments are its settings.
        replace: allow replacing an integrator already registered under ``name``.

    Returns:
        ``cls`` (or the decorator).

    Raises:
        ValueError: a malformed name, or a name already taken by another class without ``replace=True``.
        TypeError: ``cls`` is not a subclass of :class:`Integrator`.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"integrator name must be letters, digits, '_', '.' or '-' starting with a letter (at "
                         f"most 64 characters); got {str(name)[:80]!r}")

    def add(cls):
        if not (isinstance(cls, type) and issubclass(cls, Integrator)):
            raise TypeError(f"register_integrator({name!r}) needs a subclass of lumigrad.integrators.Integrator; "
                            f"got {cls!r:.80}")
        if name in _REGISTRY and _REGISTRY[name] is not cls and not replace:
            raise ValueError(f"an integrator named {name!r} is already registered ({_REGISTRY[name].__qualname__}); "
                             "pass replace=True to replace it")
        _REGISTRY[name] = cls
        return cls

    return add if cls is None else add(cls)


def unregister_integrator(name: str) -> None:
    """Remove the integrator registered under ``name`` (a ``ValueError`` listing the names if there is none)."""
    _lookup(name)
    del _REGISTRY[name]


def integrator_names() -> Tuple[str, ...]:
    """The registered integrator names, sorted."""
    return tuple(sorted(_REGISTRY))


def integrator_settings(name: str) -> Dict[str, Any]:
    """The settings of the integrator ``name`` with their defaults (its constructor's keyword arguments).

    An integrator whose constructor takes ``**kwargs`` declares no settings: ``{}``.

    Raises:
        ValueError: no integrator is registered under ``name`` (the message lists the registered ones).
    """
    settings = _settings_of(_lookup(name))
    return {} if settings is None else dict(settings)


def get_integrator(name: str, **settings) -> Integrator:
    """A new instance of the integrator registered as ``name``, configured with ``settings``.

    Raises:
        ValueError: an unknown ``name`` (the message lists the registered ones) or a setting the integrator
            does not have (naming it and listing the ones it has); the integrator's own ``TypeError`` /
            ``ValueError`` for a bad value.

    Example:
        >>> get_integrator("raster", use_antialias=False).use_antialias
        False
    """
    cls = _lookup(name)
    known = _settings_of(cls)
    if known is not None:
        for key in settings:
            if key not in known:
                have = ", ".join(known) or "none"
                raise ValueError(f"integrator {name!r} has no setting {str(key)[:80]!r}; its settings are: {have}")
    return cls(**settings)


def integrator_class(name: str) -> Type[Integrator]:
    """The class registered as ``name`` (``ValueError`` listing the registered names otherwise)."""
    return _lookup(name)


def _lookup(name) -> Type[Integrator]:
    if not isinstance(name, str) or name not in _REGISTRY:
        shown = repr(name[:80]) if isinstance(name, str) else type(name).__name__
        raise ValueError(f"unknown integrator {shown}; registered: {', '.join(integrator_names()) or 'none'}")
    return _REGISTRY[name]


_SETTINGS_CACHE: Dict[type, Optional[Dict[str, Any]]] = {}


def _settings_of(cls: type) -> Optional[Dict[str, Any]]:
    """``{setting: default}`` from ``cls.__init__``'s keyword arguments (``None``: it takes ``**kwargs``)."""
    if cls not in _SETTINGS_CACHE:
        out: Optional[Dict[str, Any]] = {}
        if cls.__init__ is not object.__init__:
            for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
                if p.kind == p.VAR_KEYWORD:
                    out = None
                    break
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                    out[p.name] = None if p.default is p.empty else p.default
        _SETTINGS_CACHE[cls] = out
    return _SETTINGS_CACHE[cls]
