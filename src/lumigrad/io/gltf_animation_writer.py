"""Write a fitted skeletal animation back into a glTF file, keeping the source file's meshes, skins and materials.

:func:`write_gltf_animation` copies a source ``.gltf`` / ``.glb`` (every node, mesh, skin, material, image and
extension unchanged) and adds one animation holding joint rotations (and, optionally, translations) sampled at
given frame times, ``LINEAR`` interpolation, as glTF 2.0 (section 3.11 "Animations") wants them:

* one shared input accessor of the frame times (seconds, float32, with ``min`` / ``max``);
* per joint node a ``rotation`` channel, quaternions ``(x, y, z, w)`` in float32 (lumigrad's ``(w, x, y, z)``
  are reordered here, once), made sign-continuous from frame to frame so that the slerp glTF viewers use
  between two frames takes the short way (``q`` and ``-q`` are the same rotation, so the frames are unchanged);
* per translated joint a ``translation`` channel (float32 ``VEC3``).

The output is self-contained: the source buffers become one buffer (the GLB binary chunk, or ``<stem>.bin``
beside a ``.gltf``), and images that the source names by URI are embedded as buffer views.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Union
from urllib.parse import quote, unquote

import numpy as np
import torch

from .._checks import check_tensor
from ..conventions import matrix_to_quaternion
from .gltf import GltfError, read_container
from .gltf_format import BIN_CHUNK, GLB_MAGIC, JSON_CHUNK

__all__ = ["write_gltf_animation"]

_FLOAT = 5126


def write_gltf_animation(
    src_path: Union[str, os.PathLike],
    out_path: Union[str, os.PathLike],
    times,
    rotations: torch.Tensor,
    *,
    joints: Optional[Sequence[int]] = None,
    translations: Union[None, torch.Tensor, Mapping[int, torch.Tensor]] = None,
    skin: int = 0,
    name: str = "fitted",
    keep_animations: bool = False,
    trust_paths: bool = False,
) -> Path:
    """Copy the glTF ``src_path`` to ``out_path`` with one more animation: joint rotations sampled at ``times``.

    Args:
        src_path: the source ``.gltf`` or ``.glb`` (its buffers and images are read from inside its folder,
            as :func:`lumigrad.io.read_gltf` reads them).
        out_path: the file to write; ``.glb`` (one binary container) or ``.gltf`` (JSON + ``<stem>.bin``).
        times: ``[T]`` frame times in seconds, ``T >= 1``, finite, ``>= 0`` and strictly increasing (glTF's
            rules for an animation sampler's input).
        rotations: the joints' *local* rotations (the node ``rotation`` of glTF's TRS), ``[T, J, 4]`` unit
            quaternions ``(w, x, y, z)`` (normalised here) or ``[T, J, 3, 3]`` rotation matrices, float.
        joints: which skin joints the ``J`` columns are: positions in ``skins[skin].joints``. Default: all of
            them in order (then ``J`` must be the skin's joint count).
        translations: local joint translations (the node ``translation``): ``[T, J, 3]`` for the same joints as
            ``rotations``, or a mapping ``{position in skins[skin].joints: [T, 3]}`` (e.g. ``{0: root}`` for
            the root joint only). ``None`` writes no translation channel (the nodes keep their own).
        skin: the index of the skin whose joints are animated.
        name: the animation's name.
        keep_animations: keep the source's animations (the new one is appended); by default they are dropped,
            so that viewers play the fitted one.
        trust_paths: read source URIs outside the source's folder too (see :mod:`lumigrad.io`).

    Returns:
        ``out_path`` as a :class:`pathlib.Path`.

    Raises:
        ValueError: bad ``out_path`` suffix, ``times`` not strictly increasing / negative / not finite,
            ``rotations`` or ``translations`` of the wrong shape or not finite, rotation matrices that are not
            rotations, a zero quaternion, ``joints`` out of range or repeated, ``skin`` out of range.
        TypeError: ``rotations`` / ``translations`` not float tensors.
        GltfError: the source file cannot be read.

    Example: ``write_gltf_animation("CesiumMan.gltf", "fit.glb", times, local_rotations)`` with
    ``local_rotations`` of shape ``[T, 19, 4]`` writes CesiumMan with a 19-joint animation of ``T`` keys, which
    the glTF loader samples back at ``times`` to the same rotations (to float32 rounding).
    """
    out_path = Path(out_path)
    suffix = out_path.suffix.lower()
    if suffix not in (".glb", ".gltf"):
        raise ValueError(f"out_path must end in .glb or .gltf; got {str(out_path)!r}")
    if not isinstance(name, str):
        raise TypeError(f"name must be a str; got {type(name).__name__}")
    times_np = _check_times(times)
    T = times_np.shape[0]
    quats = _check_rotations(rotations, T)  # [T, J, 4] float64 wxyz, unit
    source = _Source(Path(src_path), trust_paths)
    skin_joints = source.skin_joints(skin)
    J = quats.shape[1]
    columns = _check_joints(joints, J, len(skin_joints))
    trans = _check_translations(translations, T, columns, len(skin_joints))

    doc, blob = source.self_contained()
    out = _Appender(doc, blob)
    input_acc = out.accessor(times_np.reshape(-1, 1), bounds=True)
    channels: List[dict] = []
    samplers: List[dict] = []

    def channel(node: int, path: str, values: np.ndarray) -> None:
        samplers.append({"input": input_acc, "output": out.accessor(values), "interpolation": "LINEAR"})
        channels.append({"sampler": len(samplers) - 1, "target": {"node": node, "path": path}})

    xyzw = _sign_continuous(quats)[..., [1, 2, 3, 0]]
    for j, position in enumerate(columns):
        channel(skin_joints[position], "rotation", xyzw[:, j])
    for position, values in trans.items():
        channel(skin_joints[position], "translation", values)
    animations = doc.get("animations", []) if keep_animations else []
    doc["animations"] = animations + [{"name": name, "channels": channels, "samplers": samplers}]
    return out.save(out_path, binary=suffix == ".glb")


# ------------------------------------------------------------------------------------------------- checks
def _check_times(times) -> np.ndarray:
    t = torch.as_tensor(times).detach().cpu()
    if not t.dtype.is_floating_point:
        t = t.double()
    if t.dim() != 1 or t.numel() < 1:
        raise ValueError(f"times must have shape [T] with T >= 1; got {tuple(t.shape)}")
    t = t.double()
    if not bool(torch.isfinite(t).all()):
        raise ValueError("times contains NaN or Inf values")
    if float(t[0]) < 0:
        raise ValueError(f"times must be >= 0 (glTF animation inputs); got times[0] = {float(t[0])}")
    t32 = t.float()
    if t.numel() > 1 and not bool((t32[1:] > t32[:-1]).all()):
        k = int(torch.nonzero(t32[1:] <= t32[:-1])[0]) + 1
        raise ValueError(f"times must be strictly increasing (in float32, as written); got times[{k - 1}] = "
                         f"{float(t[k - 1])} and times[{k}] = {float(t[k])}")
    return t32.numpy()


def _check_rotations(rotations, T: int) -> torch.Tensor:
    check_tensor(rotations, "rotations", floating=True, finite=True, min_dims=3, max_dims=4)
    r = rotations.detach().cpu().double()
    if r.dim() == 3 and r.shape[-1] == 4:
        q = r
        norm = q.norm(dim=-1, keepdim=True)
        if bool((norm < 1e-12).any()):
            raise ValueError("rotations contains a zero quaternion")
        q = q / norm
    elif r.dim() == 4 and r.shape[-2:] == (3, 3):
        eye = torch.eye(3, dtype=r.dtype)
        err = (r.transpose(-1, -2) @ r - eye).abs().amax()
        if float(err) > 1e-4 or bool((torch.linalg.det(r) < 0).any()):
            raise ValueError("rotations must be rotation matrices (orthonormal, determinant +1); the largest "
                             f"|R^T R - I| entry is {float(err):.3g}")
        q = matrix_to_quaternion(r)
    else:
        raise ValueError(f"rotations must have shape [T, J, 4] (quaternions w, x, y, z) or [T, J, 3, 3]; got "
                         f"{tuple(rotations.shape)}")
    if q.shape[0] != T or q.shape[1] < 1:
        raise ValueError(f"rotations must have T = {T} frames (one per time) and J >= 1 joints; got shape "
                         f"{tuple(rotations.shape)}")
    return q


def _check_joints(joints, J: int, num_joints: int) -> List[int]:
    if joints is None:
        if J != num_joints:
            raise ValueError(f"rotations has {J} joints but the skin has {num_joints}; pass joints= to say which "
                             "skin joints the columns are")
        return list(range(J))
    columns = [_index(j, "joints", num_joints) for j in joints]
    if len(columns) != J:
        raise ValueError(f"joints has {len(columns)} entries but rotations has {J} joint columns")
    if len(set(columns)) != len(columns):
        raise ValueError(f"joints has repeated entries: {columns}")
    return columns


def _check_translations(translations, T: int, columns: List[int], num_joints: int) -> Dict[int, np.ndarray]:
    if translations is None:
        return {}
    if isinstance(translations, torch.Tensor):
        check_tensor(translations, "translations", trailing=(T, len(columns), 3), max_dims=3, floating=True,
                     finite=True)
        arr = translations.detach().cpu().double()
        return {position: arr[:, j].numpy() for j, position in enumerate(columns)}
    if not isinstance(translations, Mapping):
        raise TypeError(f"translations must be a tensor [T, J, 3] or a mapping {{joint: [T, 3]}}; got "
                        f"{type(translations).__name__}")
    out = {}
    for key, value in translations.items():
        position = _index(key, "translations keys", num_joints)
        check_tensor(value, f"translations[{position}]", trailing=(T, 3), max_dims=2, floating=True, finite=True)
        out[position] = value.detach().cpu().double().numpy()
    return out


def _index(value, name: str, upper: int) -> int:
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.dtype.is_floating_point:
        value = int(value)
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not 0 <= int(value) < upper:
        raise ValueError(f"{name} must hold skin joint positions in [0, {upper}); got {value!r}")
    return int(value)


def _sign_continuous(q: torch.Tensor) -> np.ndarray:
    """Flip quaternions ``[T, J, 4]`` so that consecutive frames have a non-negative dot product."""
    q = q.clone()
    for k in range(1, q.shape[0]):
        flip = (q[k] * q[k - 1]).sum(-1) < 0
        q[k][flip] = -q[k][flip]
    return q.numpy()


# ----------------------------------------------------------------------------------------------- source
class _Source:
    """The source glTF's JSON document and buffers, read within its folder."""

    def __init__(self, path: Path, trust_paths: bool):
        self.path, self.trust_paths = path, trust_paths
        self.doc, self.glb_bin = read_container(path)
        if not isinstance(self.doc, dict) or not str(self.doc.get("asset", {}).get("version", "")).startswith("2."):
            raise GltfError(f"{path}: not a glTF 2.x document")

    def skin_joints(self, skin) -> List[int]:
        skins = self.doc.get("skins", [])
        if not isinstance(skin, int) or isinstance(skin, bool) or not 0 <= skin < len(skins):
            raise ValueError(f"skin must be an index into the file's {len(skins)} skins; got {skin!r}")
        joints = skins[skin].get("joints") if isinstance(skins[skin], dict) else None
        nodes = len(self.doc.get("nodes", []))
        if not isinstance(joints, list) or not joints or not all(
                isinstance(j, int) and not isinstance(j, bool) and 0 <= j < nodes for j in joints):
            raise GltfError(f"{self.path}: skins[{skin}].joints must be a non-empty list of node indices")
        return joints

    def _uri_bytes(self, uri: str, what: str) -> bytes:
        import base64
        import binascii

        from ._paths import confined_path, open_regular_file

        if uri.startswith("data:"):
            header, _, payload = uri.partition(",")
            try:
                return base64.b64decode(payload) if header.endswith(";base64") else unquote(payload).encode()
            except binascii.Error as e:
                raise GltfError(f"{self.path}: {what} has a data URI with invalid base64 ({e})") from None
        file = confined_path(self.path.parent, unquote(uri), source=self.path, what=f"{what} URI",
                             trusted=self.trust_paths, base=GltfError)
        try:
            with open_regular_file(file, source=self.path, what=f"{what} URI", base=GltfError) as fh:
                return fh.read()
        except OSError as e:
            raise GltfError(f"{self.path}: {what} refers to {file}, which cannot be read ({e.strerror})") from None

    def self_contained(self):
        """A deep copy of the document with one buffer (all source buffers, images by URI embedded) + its bytes."""
        doc = json.loads(json.dumps(self.doc))
        blob = bytearray()
        bases = []
        for k, buf in enumerate(doc.get("buffers", [])):
            length = int(buf.get("byteLength", 0))
            data = self._uri_bytes(buf["uri"], f"buffers[{k}]") if "uri" in buf else self.glb_bin
            if data is None or len(data) < length:
                raise GltfError(f"{self.path}: buffers[{k}] has fewer bytes than its byteLength {length}")
            blob.extend(b"\0" * (-len(blob) % 8))
            bases.append(len(blob))
            blob.extend(data[:length])
        for k, view in enumerate(doc.get("bufferViews", [])):
            buffer = view.get("buffer")
            if not isinstance(buffer, int) or not 0 <= buffer < len(bases):
                raise GltfError(f"{self.path}: bufferViews[{k}].buffer {buffer!r} does not exist")
            view["buffer"] = 0
            view["byteOffset"] = bases[buffer] + int(view.get("byteOffset", 0))
        appender = _Appender(doc, blob)
        for k, image in enumerate(doc.get("images", [])):
            if "uri" in image:
                data = self._uri_bytes(image.pop("uri"), f"images[{k}]")
                image["bufferView"] = appender.view(data)
                image.setdefault("mimeType", _mime_type(data))
        return doc, blob


def _mime_type(data: bytes) -> str:
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


class _Appender:
    """Appends buffer views and accessors to a document whose single buffer is ``blob``, and saves it."""

    def __init__(self, doc: dict, blob: bytearray):
        self.doc, self.blob = doc, blob

    def view(self, data: bytes) -> int:
        self.blob.extend(b"\0" * (-len(self.blob) % 4))
        self.doc.setdefault("bufferViews", []).append(
            {"buffer": 0, "byteOffset": len(self.blob), "byteLength": len(data)})
        self.blob.extend(data)
        return len(self.doc["bufferViews"]) - 1

    def accessor(self, values: np.ndarray, bounds: bool = False) -> int:
        values = np.ascontiguousarray(values, dtype="<f4")
        width = values.shape[1]
        acc = {"bufferView": self.view(values.tobytes()), "componentType": _FLOAT, "count": int(values.shape[0]),
               "type": {1: "SCALAR", 3: "VEC3", 4: "VEC4"}[width]}
        if bounds:
            acc["min"] = [float(v) for v in values.min(0)]
            acc["max"] = [float(v) for v in values.max(0)]
        self.doc.setdefault("accessors", []).append(acc)
        return len(self.doc["accessors"]) - 1

    def save(self, path: Path, binary: bool) -> Path:
        self.blob.extend(b"\0" * (-len(self.blob) % 4))
        doc = self.doc
        doc["buffers"] = [{"byteLength": len(self.blob)}]
        doc["asset"] = dict(doc.get("asset", {}), version="2.0")
        path.parent.mkdir(parents=True, exist_ok=True)
        if binary:
            text = json.dumps(doc, separators=(",", ":")).encode("utf-8")
            text += b" " * (-len(text) % 4)
            chunks = struct.pack("<II", len(text), JSON_CHUNK) + text
            chunks += struct.pack("<II", len(self.blob), BIN_CHUNK) + bytes(self.blob)
            path.write_bytes(struct.pack("<III", GLB_MAGIC, 2, 12 + len(chunks)) + chunks)
        else:
            bin_name = f"{path.stem}.bin"
            doc["buffers"][0]["uri"] = quote(bin_name)
            (path.parent / bin_name).write_bytes(bytes(self.blob))
            path.write_text(json.dumps(doc, indent=1), encoding="utf-8")
        return path
