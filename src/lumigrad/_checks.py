"""One helper that validates tensors in public wrappers: name, type, shape, dtype, device, finiteness.

Kernels never see unchecked input: every public op calls these first and raises ``TypeError`` /
``ValueError`` naming the argument, what was expected and what came.
"""

from __future__ import annotations

import functools
import math
from typing import Optional, Sequence

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
INT_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def check_tensor(
    x,
    name: str,
    *,
    trailing: Sequence[Optional[int]] = (),
    min_dims: Optional[int] = None,
    max_dims: Optional[int] = None,
    floating: Optional[bool] = None,
    finite: bool = False,
    device: Optional[torch.device] = None,
) -> torch.Tensor:
    """Validate ``x`` and return it unchanged.

    Args:
        x: the value to check.
        name: the argument's name, used in error messages.
        trailing: expected sizes of the last dims; ``None`` means any size.
        min_dims / max_dims: bounds on ``x.dim()``; ``min_dims`` defaults to ``len(trailing)``.
        floating: ``True`` requires a floating dtype, ``False`` an integer dtype.
        finite: reject NaN / Inf values.
        device: required device (the device of the op's first tensor).
    """
    if not isinstance(x, torch.Tensor):
        hint = " (lumigrad.render's result: pass its .rgb, .alpha or .rgba)" if hasattr(type(x), "rgba") else ""
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}{hint}")
    if floating is True and x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have a floating dtype; got {x.dtype}")
    if floating is False and x.dtype not in INT_DTYPES:
        raise TypeError(f"{name} must have an integer dtype; got {x.dtype}")
    lo = len(trailing) if min_dims is None else min_dims
    if x.dim() < lo or (max_dims is not None and x.dim() > max_dims):
        shape = _shape_text(trailing, lo, max_dims)
        raise ValueError(f"{name} must have shape {shape}; got {tuple(x.shape)}")
    for k, want in enumerate(reversed(list(trailing))):
        if want is not None and x.shape[-1 - k] != want:
            raise ValueError(f"{name} must have shape {_shape_text(trailing, lo, max_dims)}; got {tuple(x.shape)}")
    if device is not None and x.device != torch.device(device):
        raise ValueError(f"{name} is on {x.device} but the other inputs are on {device}; move them to one device")
    if finite and x.numel() and x.device.type != "meta" and not _all_finite(x):
        raise ValueError(f"{name} contains NaN or Inf values")
    return x


def _all_finite(x: torch.Tensor) -> bool:
    """Whether ``x`` holds no NaN / Inf, screened by one reduction instead of an elementwise test: NaN or Inf
    anywhere makes the sum NaN or Inf, so a finite sum proves every value finite; only a non-finite sum (a bad
    value, or finite values whose sum overflows) runs the elementwise test."""
    return bool(torch.isfinite(x.detach().sum())) or bool(torch.isfinite(x).all())


def check_all_finite(named) -> None:
    """Raise ``ValueError`` naming the first of ``named`` (``(name, tensor)`` pairs) with NaN / Inf values; one
    host sync for all of them (a second only when some tensor's sum is not finite)."""
    named = [(n, t) for n, t in named if t.numel() and t.device.type != "meta"]
    if not named:
        return
    # screened by one sum per tensor, as _all_finite; the elementwise test only when a sum is not finite
    if bool(torch.stack([torch.isfinite(t.detach().sum()) for _, t in named]).all()):
        return
    ok = torch.stack([torch.isfinite(t).all() for _, t in named]).tolist()
    if not all(ok):
        raise ValueError(f"{named[ok.index(False)][0]} contains NaN or Inf values")


def check_channels(x: torch.Tensor, name: str, shape: str) -> torch.Tensor:
    """Raise ``ValueError`` unless ``x`` (channel-last) has at least one channel; ``shape`` is the expected
    layout for the message, e.g. ``"[..., H, W, C]"``."""
    if x.shape[-1] == 0:
        raise ValueError(f"{name} must have at least one channel (shape {shape} with C >= 1); got {tuple(x.shape)}")
    return x


#: Textures of at most this many rows with more channels than it are refused as channel-first images.
MAX_IMAGE_CHANNELS = 4


def check_texture_layout(tex: torch.Tensor, name: str) -> torch.Tensor:
    """Raise ``ValueError`` unless ``tex [..., Ht, Wt, C]`` has a texel and a channel and is not channel-first.

    An image given channel-first (``[3, 1024, 1024]``) would be read as a 3 x 1024 texture of 1024 channels.
    The rule: a texture of at most :data:`MAX_IMAGE_CHANNELS` rows with more channels than that is ambiguous
    and refused, with the ``permute(1, 2, 0)`` that fixes the usual mistake.
    """
    if tex.shape[-3] == 0 or tex.shape[-2] == 0:
        raise ValueError(f"{name} must have at least one texel; got shape {tuple(tex.shape)}")
    check_channels(tex, name, "[..., Ht, Wt, C]")
    rows, channels = tex.shape[-3], tex.shape[-1]
    if rows <= MAX_IMAGE_CHANNELS < channels:
        raise ValueError(f"{name} of shape {tuple(tex.shape)} looks channel-first ([C, H, W] with C = {rows}); "
                         f"textures are channel-last [..., Ht, Wt, C]: pass {name}.permute(1, 2, 0) (a texture of "
                         f"at most {MAX_IMAGE_CHANNELS} rows with more than {MAX_IMAGE_CHANNELS} channels is "
                         "refused as ambiguous)")
    return tex


def check_number(value, name: str, *, lo: Optional[float] = None, hi: Optional[float] = None,
                 lo_open: bool = False, hi_open: bool = False) -> float:
    """Return ``value`` as a finite Python float, or raise naming ``name``.

    ``TypeError`` unless ``value`` is a real number (bools refused; a one-element tensor is read with
    ``float``); ``ValueError`` for NaN / Inf or outside ``[lo, hi]`` (``lo_open`` / ``hi_open`` exclude the
    bound).
    """
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.dtype == torch.bool:
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__}")
    value = float(value)
    low_bad = lo is not None and (value <= lo if lo_open else value < lo)
    high_bad = hi is not None and (value >= hi if hi_open else value > hi)
    if not math.isfinite(value) or low_bad or high_bad:
        if lo is not None or hi is not None:
            left = "(" if lo_open else "["
            right = ")" if hi_open else "]"
            want = f"a finite number in {left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{right}"
        else:
            want = "a finite number"
        raise ValueError(f"{name} must be {want}; got {value}")
    return value


def check_numbers(values, name: str, *, min_count: int = 1) -> list:
    """Return the finite real numbers ``values`` (a sequence, or a tensor of at most one dim) as a list, or raise
    naming ``name``: Python floats for a sequence (each element read by :func:`check_number` as
    ``name[k]``), the 0-d elements for a floating tensor (they keep their autograd graph).

    ``TypeError`` for a string, a non-sequence, a non-number element or an integer tensor; ``ValueError`` for
    NaN / Inf, a tensor of more than one dim, or fewer than ``min_count`` values.

    Example: ``check_numbers([0, 0.5], "times")`` gives ``[0.0, 0.5]``.
    """
    if isinstance(values, torch.Tensor):
        if values.dim() > 1:
            raise ValueError(f"{name} must be a 1-D tensor (or 0-D); got shape {tuple(values.shape)}")
        check_tensor(values, name, floating=True, finite=True)
        out = list(values.reshape(-1).unbind(0))
    elif isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a sequence of numbers or a 1-D tensor; got {type(values).__name__}")
    else:
        out = [check_number(v, f"{name}[{k}]") for k, v in enumerate(values)]
    if len(out) < min_count:
        need = "one value" if min_count == 1 else f"{min_count} values"
        raise ValueError(f"{name} must hold at least {need}; got {len(out)}")
    return out


def check_indices(idx: torch.Tensor, name: str, upper: int) -> None:
    """Raise ``ValueError`` if any index lies outside ``[0, upper)``.

    A tensor that passed is remembered while it is alive and unchanged (in-place changes bump its version):
    the same index table given again, frame after frame, is not scanned (nor synced on CUDA) again.
    """
    if idx.numel() == 0 or _VERDICTS.passed(idx, ("indices", upper)):
        return
    lo, hi = (int(v) for v in torch.stack([idx.min(), idx.max()]).tolist())  # one transfer
    if lo < 0 or hi >= upper:
        bad = lo if lo < 0 else hi
        raise ValueError(f"{name} holds index {bad}, outside the valid range [0, {upper})")
    _VERDICTS.remember(idx, ("indices", upper))


def check_mesh(verts, faces, *, batched: bool = False, allow_empty: bool = False, device=None,
               what: str = "a mesh") -> None:
    """Validate ``verts [V, 3]`` (``[..., V, 3]`` when ``batched``; float, finite) and ``faces [F, 3]`` (integer
    indices into ``verts``, at least one face unless ``allow_empty``); errors name the argument and ``what``."""
    check_tensor(verts, "verts", trailing=(None, 3), max_dims=None if batched else 2, floating=True, finite=True,
                 device=device)
    check_tensor(faces, "faces", trailing=(None, 3), max_dims=2, floating=False, device=verts.device)
    if not allow_empty and faces.shape[0] == 0:
        raise ValueError(f"faces is empty: {what} needs at least one triangle (faces [F, 3] with F >= 1)")
    check_indices(faces, "faces", verts.shape[-2])


def broadcast_batch(a, a_name: str, b, b_name: str) -> torch.Size:
    """Broadcast two batch shapes or raise ``ValueError`` naming both arguments."""
    try:
        return torch.broadcast_shapes(tuple(a), tuple(b))
    except RuntimeError:
        raise ValueError(f"{a_name} has batch dims {tuple(a)} and {b_name} has {tuple(b)}; they must be "
                         "equal or broadcastable") from None


def check_face_ids(face_ids: torch.Tensor, faces: torch.Tensor, name: str = "faces",
                   num_faces: Optional[int] = None) -> None:
    """Raise unless every face id in ``face_ids`` indexes a row of ``faces`` (fragments from this mesh).

    ``num_faces``, the number of faces the ids were drawn from (``Fragments.num_faces``), settles it without
    reading the ids when ``faces`` has at least that many rows.
    """
    if num_faces is not None and num_faces <= faces.shape[0]:
        return
    if face_ids.numel() and int(face_ids.max()) >= faces.shape[0]:
        raise ValueError(f"frags refer to face {int(face_ids.max())} but {name} has only {faces.shape[0]} rows; "
                         f"pass the {name} that were rasterized")


def check_choice(value, name: str, choices: Sequence[str]) -> str:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}")
    return value


def check_positive_int(value, name: str) -> int:
    """Raise unless ``value`` is a positive Python integer."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int; got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be positive; got {value}")
    return value


def resolve_device(name, argument: str = "device") -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when available) as a device; CUDA asked for where
    there is none (or no device N) raises ValueError naming ``argument``."""
    text = str(name) if isinstance(name, torch.device) else name
    index = None
    if isinstance(text, str) and text.startswith("cuda:") and text[5:].isdigit():
        text, index = "cuda", int(text[5:])
    if text not in ("cpu", "cuda", "auto"):
        raise ValueError(f"{argument} must be cpu, cuda, cuda:N or auto; got {name!r}")
    if text == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{argument} {name} was requested but CUDA is not available (torch.cuda.is_available() is "
                         "False); use cpu or auto")
    if index is not None:
        if index >= torch.cuda.device_count():
            raise ValueError(f"{argument} {name}: there is no CUDA device {index} (this machine has "
                             f"{torch.cuda.device_count()}: cuda:0 to cuda:{torch.cuda.device_count() - 1})")
        return torch.device("cuda", index)
    return torch.device("cuda" if text == "cuda" or (text == "auto" and torch.cuda.is_available()) else "cpu")


def _shape_text(trailing, lo, hi) -> str:
    dims = ["?" if t is None else str(t) for t in trailing]
    lead = "..., " if (hi is None or hi > len(trailing)) else ""
    return "[" + lead + ", ".join(dims) + "]"


# ------------------------------------------------------------------------------------------ checks without syncs
# A value check (finiteness, index range) reads a verdict from the tensor's device: on CUDA that is a host
# sync. Two tools keep such checks out of a per-frame path: verdicts remembered per tensor version (an
# unchanged index table is scanned once, not once per frame), and verdicts left on the device and read in the
# transfer the caller makes anyway (the rasterizer reads its tile count; its checks ride along).

class PerVersion:
    """Values derived from tensors (check verdicts, derived tensors), kept while each tensor is alive and unchanged.

    A tensor is known by identity (a weak reference, so a freed tensor's address reused by another is never
    mistaken for it) and by ``_version``, which every in-place change bumps; each keeps one value per ``key``.
    Inference tensors have no version and are never remembered. At most ``capacity`` tensors are kept (dead ones
    dropped first, then the oldest).
    """

    def __init__(self, capacity: int = 256):
        self._capacity = capacity
        self._entries: dict = {}  # id(tensor) -> (weakref, version, {key: value})

    @staticmethod
    def _version(x: torch.Tensor) -> Optional[int]:
        try:
            return x._version
        except RuntimeError:  # inference tensors
            return None

    def recall(self, x: torch.Tensor, key):
        """The value kept for ``key`` of ``x`` as it is now, or None."""
        entry = self._entries.get(id(x))
        if entry is None or entry[0]() is not x or entry[1] != self._version(x):
            return None
        return entry[2].get(key)

    def keep(self, x: torch.Tensor, key, value) -> None:
        """Keep ``value`` for ``key`` of ``x`` as it is now (not for an inference tensor)."""
        import weakref

        version = self._version(x)
        if version is None:
            return
        entry = self._entries.get(id(x))
        if entry is None or entry[0]() is not x or entry[1] != version:
            if len(self._entries) >= self._capacity:
                self._entries = {k: e for k, e in self._entries.items() if e[0]() is not None}
                if len(self._entries) >= self._capacity:
                    self._entries.pop(next(iter(self._entries)))
            entry = (weakref.ref(x), version, {})
            self._entries[id(x)] = entry
        entry[2][key] = value

    def passed(self, x: torch.Tensor, key) -> bool:
        """True when ``x``, unchanged since, passed the check ``key`` (:meth:`remember`)."""
        return self.recall(x, key) is True

    def remember(self, x: torch.Tensor, key) -> None:
        """Record that ``x`` (as it is now) passed the check ``key``."""
        self.keep(x, key, True)


_VERDICTS = PerVersion()


class DeferredChecks:
    """Value checks whose verdicts stay on the device until :meth:`read` fetches them in one transfer.

    A per-frame pipeline queues its checks (each a device bool, True when the check failed, and a function that
    raises the error) and reads them together with a value it must fetch anyway, so the checks add no host
    sync. Whatever the pipeline runs between queueing and reading must be safe on the unchecked values (the
    raster kernels skip non-finite triangles). After a read the queue is empty; passed finiteness verdicts are
    remembered per tensor version.
    """

    def __init__(self):
        self._failed: list = []   # device bools, True = failed
        self._raise: list = []    # matching zero-argument callables that raise the error
        self._remember: list = []   # (tensor, check key) to remember when it passes, or None

    def __len__(self) -> int:
        return len(self._failed)

    def add(self, failed: torch.Tensor, raise_error) -> None:
        """Queue a check: ``failed`` (a bool scalar on the device) and the callable raising its error."""
        self._failed.append(failed.reshape(()))
        self._raise.append(raise_error)
        self._remember.append(None)

    def require_finite(self, named: "dict") -> None:
        """Queue "contains NaN or Inf" for each floating tensor of ``{name: tensor}`` not already known finite."""
        self.require(named, "finite", lambda x: ~torch.isfinite(x).all(), _raise_not_finite)

    def require_nonnegative(self, named: "dict") -> None:
        """Queue "must be non-negative" for each floating tensor of ``{name: tensor}`` (NaN passes here: pair
        it with :meth:`require_finite`)."""
        self.require(named, "nonnegative", lambda x: (x < 0).any(), _raise_negative)

    def require_positive(self, named: "dict") -> None:
        """Queue "must be positive" for each floating tensor of ``{name: tensor}`` (NaN passes here)."""
        self.require(named, "positive", lambda x: (x <= 0).any(), _raise_not_positive)

    def require(self, named: "dict", key: str, failed, raise_error) -> None:
        """Queue the check ``key`` for each floating tensor of ``{name: tensor}`` that has not passed it in
        its current version: ``failed(tensor)`` gives the device bool, ``raise_error(name, tensor)`` raises."""
        for name, x in named.items():
            if x.dtype not in FLOAT_DTYPES or x.numel() == 0 or x.device.type == "meta" or _VERDICTS.passed(x, key):
                continue
            value = x.detach()
            self._failed.append(failed(value).reshape(()))
            self._raise.append(functools.partial(raise_error, name, value))
            self._remember.append((x, key))  # the tensor itself: its identity and version are the key

    def read(self, *values: torch.Tensor) -> list:
        """Fetch the scalar tensors ``values`` and every queued verdict in one transfer; raise the first failed
        check's error, else return ``values`` as Python numbers."""
        failed, raisers, remember = self._failed, self._raise, self._remember
        self._failed, self._raise, self._remember = [], [], []
        parts = [v.reshape(1).to(torch.float64) for v in values]
        device = values[0].device if values else (failed[0].device if failed else None)
        if failed:
            parts += [torch.stack([f.to(device) for f in failed]).to(torch.float64)]
        if not parts:
            return []
        host = torch.cat(parts).tolist()
        for bad, raise_error, remembered in zip(host[len(values):], raisers, remember):
            if bad:
                raise_error()
            if remembered is not None:
                _VERDICTS.remember(*remembered)
        return [int(v) if float(v).is_integer() else v for v in host[:len(values)]]

    def flush(self) -> None:
        """Read the queued verdicts now (one transfer) and raise the first failed check's error."""
        if self._failed:
            self.read()


def _raise_not_finite(name: str, x: torch.Tensor) -> None:
    raise ValueError(f"{name} contains NaN or Inf values")


def _raise_not_positive(name: str, x: torch.Tensor) -> None:
    raise ValueError(f"{name} must be positive; got minimum {float(x.min()):.6g}")


def _raise_negative(name: str, x: torch.Tensor) -> None:
    raise ValueError(f"{name} must be non-negative; got minimum {float(x.min()):.6g}")

