"""One helper that validates tensors in public wrappers: name, type, shape, dtype, device, finiteness.

Kernels never see unchecked input: every public op calls these first and raises ``TypeError`` /
``ValueError`` naming the argument, what was expected and what came.
"""

from __future__ import annotations

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
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
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
    if finite and x.numel() and x.device.type != "meta" and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or Inf values")
    return x


def check_indices(idx: torch.Tensor, name: str, upper: int) -> None:
    """Raise ``ValueError`` if any index lies outside ``[0, upper)``."""
    if idx.numel() == 0:
        return
    lo, hi = int(idx.min()), int(idx.max())
    if lo < 0 or hi >= upper:
        bad = lo if lo < 0 else hi
        raise ValueError(f"{name} holds index {bad}, outside the valid range [0, {upper})")


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


def check_face_ids(face_ids: torch.Tensor, faces: torch.Tensor, name: str = "faces") -> None:
    """Raise unless every face id in ``face_ids`` indexes a row of ``faces`` (fragments from this mesh)."""
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


def resolve_device(name: str, argument: str = "device") -> torch.device:
    """``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available) as a device; CUDA without a device raises
    ValueError naming ``argument``."""
    check_choice(name, argument, ("cpu", "cuda", "auto"))
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{argument} cuda was requested but CUDA is not available (torch.cuda.is_available() is "
                         "False); use cpu or auto")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def _shape_text(trailing, lo, hi) -> str:
    dims = ["?" if t is None else str(t) for t in trailing]
    lead = "..., " if (hi is None or hi > len(trailing)) else ""
    return "[" + lead + ", ".join(dims) + "]"
