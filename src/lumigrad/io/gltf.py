"""glTF 2.0 reader (``.gltf`` with external or embedded buffers, and binary ``.glb``) into a :class:`Scene`.

What is read, once, into lumigrad's conventions:

* meshes: every triangle primitive (modes TRIANGLES, TRIANGLE_STRIP, TRIANGLE_FAN) becomes a
  :class:`SceneMesh` named after its node (``Node``, ``Node-1`` for a second primitive), with ``POSITION``,
  ``NORMAL``, ``TANGENT`` and ``TEXCOORD_0``, and the node's world transform as ``to_world``; sparse
  accessors and normalized integer attributes are decoded. Points and lines are skipped with a warning.
* materials: ``pbrMetallicRoughness`` (base colour, metallic, roughness and their textures), normal,
  occlusion and emissive maps, ``doubleSided``, ``KHR_materials_ior`` and
  ``KHR_materials_emissive_strength``. glTF texture coordinates already have lumigrad's top-left origin,
  so no V flip is applied. Texture images are decoded with Pillow (PNG, JPEG) as stored, in [0, 1];
  :func:`lumigrad.shading.sample_material` decodes sRGB where glTF says so.
* cameras: perspective (``yfov``, ``aspectRatio``) and orthographic (``xmag``, ``ymag``) into
  :class:`lumigrad.Camera` (the glTF camera looks down its local -z with +y up, the OpenGL frame); the
  image size is ``image_height`` pixels high and ``aspectRatio`` wide.
* lights: ``KHR_lights_punctual`` point, spot and directional lights (shining along the node's -z).

Malformed files raise :class:`GltfError` naming the file and the element at fault (``nodes[3].translation
must be a list of 3 finite numbers``): every JSON field is type-checked where it is read, indices and byte
ranges are checked against what they point into before anything is sliced, node hierarchies must be trees
(a node reached twice, through a cycle or a second parent, is refused), and an accessor without a
``bufferView`` (all zeros) larger than ``MAX_IMPLICIT_ACCESSOR_BYTES`` is refused before allocating.

Not read: animations, skins, morph targets (later issues), ``TEXCOORD_1`` (textures using it are
read with ``TEXCOORD_0`` and a warning), ``KHR_texture_transform``, per-texture samplers (one wrap mode
per material: the first texture's), and alpha blending (rendered opaque).
"""

from __future__ import annotations

import base64
import binascii
import io as _io
import json
import math
import os
import struct
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from ..cameras.camera import Camera
from ..cameras import projection
from ..conventions import opengl_c2w_to_world_to_cam, quaternion_to_matrix
from ..scene.lights import DirectionalLight, PointLight, SpotLight
from ..scene.scene import Scene, SceneMesh
from ..shading.material import TEXTURE_SLOTS, Material

__all__ = ["GltfError", "read_gltf"]

_COMPONENTS = {5120: (np.int8, 127.0), 5121: (np.uint8, 255.0), 5122: (np.int16, 32767.0),
               5123: (np.uint16, 65535.0), 5125: (np.uint32, None), 5126: (np.float32, None)}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_WRAP = {10497: "repeat", 33071: "clamp", 33648: "mirror"}
_GLB_MAGIC, _JSON_CHUNK, _BIN_CHUNK = 0x46546C67, 0x4E4F534A, 0x004E4942
MAX_IMPLICIT_ACCESSOR_BYTES = 1 << 26  # an accessor without a bufferView (all zeros) is refused beyond this
_REQUIRED = object()
_JSON_TYPES = {"dict": dict, "list": list, "str": str, "bool": bool}
_KIND_TEXT = {"index": "a non-negative integer", "number": "a finite number",
              "numbers": "a list of {length} finite numbers", "dict": "an object", "list": "an array",
              "str": "a string", "bool": "true or false"}


class GltfError(ValueError):
    """A glTF file that cannot be read, with the file and the element at fault in the message."""


def read_gltf(path: str | os.PathLike, *, scene: Optional[int] = None, image_height: int = 512,
              dtype: torch.dtype = torch.float32) -> Scene:
    """Read a glTF 2.0 file (``.gltf`` or ``.glb``) into a :class:`lumigrad.Scene`.

    Args:
        path: the file; external buffers and images are resolved next to it.
        scene: which of the file's scenes (default: its ``scene``, else the first).
        image_height: pixel height of the cameras read from the file.
        dtype: floating dtype of every tensor.

    Returns:
        A :class:`Scene` with ``meshes``, ``cameras`` and ``lights`` named after their nodes (characters
        other than letters, digits, ``_`` and ``-`` become ``_``; repeats get ``-1``, ``-2`` ...).

    Raises:
        GltfError: malformed JSON or binary container, missing buffers, out-of-range indices or accessors,
        unsupported required extensions.
    """
    return _Reader(Path(path), dtype).scene(scene, image_height)


class _Reader:
    def __init__(self, path: Path, dtype: torch.dtype):
        self.path, self.dtype = path, dtype
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise GltfError(f"{path}: cannot read ({e.strerror})") from None
        self.glb_bin: Optional[bytes] = None
        if raw[:4] == b"glTF":
            raw = self._split_glb(raw)
        try:
            self.doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            raise GltfError(f"{path}: not glTF JSON ({type(e).__name__}: {e})") from None
        if not isinstance(self.doc, dict):
            raise GltfError(f"{path}: the top-level JSON value must be an object; got {type(self.doc).__name__}")
        asset = self.get(self.doc, "asset", "dict", "the document", {})
        version = str(asset.get("version", ""))
        if not version.startswith("2."):
            raise GltfError(f"{path}: asset.version is {version!r}; only glTF 2.x is supported")
        required = self.get(self.doc, "extensionsRequired", "list", "the document", [])
        if not all(isinstance(name, str) for name in required):
            raise GltfError(f"{path}: extensionsRequired must be a list of strings; got {required!r:.80}")
        supported = {"KHR_lights_punctual", "KHR_materials_ior", "KHR_materials_emissive_strength"}
        missing = set(required) - supported
        if missing:
            raise GltfError(f"{path}: requires unsupported extensions {sorted(missing)}")
        self._buffers: Dict[int, bytes] = {}
        self._images: Dict[int, torch.Tensor] = {}
        self._names: Dict[str, int] = {}

    # ------------------------------------------------------------------------------------ typed fields
    def get(self, obj: dict, key: str, kind: str, where: str, default=_REQUIRED, length: Optional[int] = None):
        """Return ``obj[key]`` checked to be of ``kind`` (see ``_KIND_TEXT``), or ``default`` when it is absent.

        ``"index"`` is a non-negative integer, ``"number"`` a finite number (returned as float), ``"numbers"`` a
        list of ``length`` finite numbers (returned as floats); ``"dict"``, ``"list"``, ``"str"``, ``"bool"`` are
        the JSON types. Raises GltfError naming ``where.key`` for a missing required field or a wrong type.
        """
        if key not in obj:
            if default is _REQUIRED:
                raise GltfError(f"{self.path}: {where} has no {key!r}")
            return default
        value = obj[key]
        if kind == "index":
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        elif kind == "number":
            ok = _is_number(value)
        elif kind == "numbers":
            ok = isinstance(value, list) and all(_is_number(v) for v in value) and \
                (length is None or len(value) == length)
        else:
            ok = isinstance(value, _JSON_TYPES[kind])
        if not ok:
            text = _KIND_TEXT[kind].format(length=length)
            raise GltfError(f"{self.path}: {where}.{key} must be {text}; got {_short(value)}")
        if kind == "number":
            return float(value)
        if kind == "numbers":
            return [float(v) for v in value]
        return value

    def _make(self, where: str, make, *args, **kwargs):
        """Build a lumigrad object from validated glTF fields; its own ValueError becomes a GltfError."""
        try:
            return make(*args, **kwargs)
        except GltfError:
            raise
        except ValueError as e:
            raise GltfError(f"{self.path}: {where}: {e}") from None

    # --------------------------------------------------------------------------------------- container
    def _split_glb(self, raw: bytes) -> bytes:
        if len(raw) < 20:
            raise GltfError(f"{self.path}: truncated GLB header")
        magic, version, length = struct.unpack_from("<III", raw, 0)
        if magic != _GLB_MAGIC or version != 2:
            raise GltfError(f"{self.path}: GLB version {version}; only version 2 is supported")
        if length > len(raw):
            raise GltfError(f"{self.path}: GLB says {length} bytes but the file has {len(raw)} (truncated)")
        pos, json_chunk = 12, None
        while pos + 8 <= length:
            size, kind = struct.unpack_from("<II", raw, pos)
            if pos + 8 + size > length:
                raise GltfError(f"{self.path}: GLB chunk at byte {pos} runs past the end of the file")
            data = raw[pos + 8:pos + 8 + size]
            if kind == _JSON_CHUNK and json_chunk is None:
                json_chunk = data
            elif kind == _BIN_CHUNK and self.glb_bin is None:
                self.glb_bin = data
            pos += 8 + size
        if json_chunk is None:
            raise GltfError(f"{self.path}: GLB has no JSON chunk")
        return json_chunk

    def _item(self, kind: str, index) -> dict:
        items = self.get(self.doc, kind, "list", "the document", [])
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(items):
            raise GltfError(f"{self.path}: {kind}[{_short(index)}] does not exist ({len(items)} {kind})")
        if not isinstance(items[index], dict):
            raise GltfError(f"{self.path}: {kind}[{index}] must be an object; got {_short(items[index])}")
        return items[index]

    def _uri_bytes(self, uri: str, what: str, expected: Optional[int] = None) -> bytes:
        if uri.startswith("data:"):
            header, _, payload = uri.partition(",")
            if not header.endswith(";base64"):
                raise GltfError(f"{self.path}: {what} has a data URI that is not base64")
            try:
                return base64.b64decode(payload)
            except binascii.Error as e:
                raise GltfError(f"{self.path}: {what} has a data URI with invalid base64 ({e})") from None
        from urllib.parse import unquote, urlparse

        if urlparse(uri).scheme not in ("", "file") or unquote(uri).startswith(("/", "\\")) or "\0" in unquote(uri):
            raise GltfError(f"{self.path}: {what} has URI {_short(uri)}; only relative paths inside the file's "
                            "folder (or data URIs) are read")
        try:
            folder = self.path.parent.resolve()
            file = (folder / unquote(uri)).resolve()
        except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop
            raise GltfError(f"{self.path}: {what} has URI {_short(uri)}, which cannot be resolved ({e})") from None
        if folder not in file.parents:
            raise GltfError(f"{self.path}: {what} refers to {_short(uri)}, outside the file's folder; refused")
        try:
            size = file.stat().st_size
            if expected is not None and size < expected:
                raise GltfError(f"{self.path}: {what} declares {expected} bytes but {file.name} has {size} "
                                "(truncated or wrong file)")
            return file.read_bytes()
        except OSError as e:
            raise GltfError(f"{self.path}: {what} refers to {file}, which cannot be read ({e.strerror})") from None

    def buffer(self, index: int) -> bytes:
        if index not in self._buffers:
            b = self._item("buffers", index)
            where = f"buffers[{index}]"
            length = self.get(b, "byteLength", "index", where, 0)
            if "uri" in b:
                data = self._uri_bytes(self.get(b, "uri", "str", where), where, expected=length)
            elif self.glb_bin is not None:
                data = self.glb_bin
            else:
                raise GltfError(f"{self.path}: {where} has no uri and there is no GLB binary chunk")
            if len(data) < length:
                raise GltfError(f"{self.path}: {where} has {len(data)} bytes, byteLength says {length} (truncated?)")
            self._buffers[index] = data
        return self._buffers[index]

    def view_bytes(self, index: int) -> Tuple[bytes, int, int, Optional[int]]:
        """Return ``(buffer bytes, byteOffset, byteLength, byteStride or None)`` of ``bufferViews[index]``."""
        view = self._item("bufferViews", index)
        where = f"bufferViews[{index}]"
        data = self.buffer(self.get(view, "buffer", "index", where))
        start, length = self.get(view, "byteOffset", "index", where, 0), self.get(view, "byteLength", "index", where)
        stride = self.get(view, "byteStride", "index", where, None)
        if start + length > len(data):
            raise GltfError(f"{self.path}: {where} (bytes {start} to {start + length}) runs past the end of its "
                            f"buffer ({len(data)} bytes)")
        return data, start, length, stride

    # --------------------------------------------------------------------------------------- accessors
    def accessor(self, index: int) -> np.ndarray:
        """``[count, width]`` float64 (normalized integers mapped to [0, 1] / [-1, 1]) or integer array."""
        acc = self._item("accessors", index)
        where = f"accessors[{index}]"
        if not (_is_key(acc.get("componentType"), int, _COMPONENTS) and _is_key(acc.get("type"), str, _WIDTH)):
            raise GltfError(f"{self.path}: {where} has componentType {_short(acc.get('componentType'))} / type "
                            f"{_short(acc.get('type'))}, which glTF 2.0 does not define")
        np_type, norm = _COMPONENTS[acc["componentType"]]
        width, count = _WIDTH[acc["type"]], self.get(acc, "count", "index", where)
        if "bufferView" in acc:
            out = self._read_elements(self.get(acc, "bufferView", "index", where),
                                      self.get(acc, "byteOffset", "index", where, 0), np_type, width, count, where)
        else:
            nbytes = count * width * np.dtype(np_type).itemsize
            if nbytes > MAX_IMPLICIT_ACCESSOR_BYTES:
                raise GltfError(f"{self.path}: {where} has no bufferView and declares {count} elements "
                                f"({nbytes} bytes of zeros, more than the {MAX_IMPLICIT_ACCESSOR_BYTES} read)")
            out = np.zeros((count, width), dtype=np_type)
        if "sparse" in acc:
            out = out.copy()
            sp = self.get(acc, "sparse", "dict", where)
            n = self.get(sp, "count", "index", where + ".sparse")
            if n > count:
                raise GltfError(f"{self.path}: {where}.sparse.count is {n}, more than the accessor's {count}")
            indices = self.get(sp, "indices", "dict", where + ".sparse")
            values = self.get(sp, "values", "dict", where + ".sparse")
            idx_code = indices.get("componentType")
            idx_type = _COMPONENTS[idx_code][0] if _is_key(idx_code, int, _COMPONENTS) else None
            if idx_type is None or np.dtype(idx_type).kind != "u":
                raise GltfError(f"{self.path}: {where}.sparse.indices has componentType "
                                f"{_short(indices.get('componentType'))}; expected 5121, 5123 or 5125")
            idx = self._read_elements(self.get(indices, "bufferView", "index", where + ".sparse.indices"),
                                      self.get(indices, "byteOffset", "index", where + ".sparse.indices", 0),
                                      idx_type, 1, n, where + ".sparse.indices")[:, 0].astype(np.int64)
            if n and (idx.min() < 0 or idx.max() >= count):
                raise GltfError(f"{self.path}: {where}.sparse.indices out of range [0, {count})")
            out[idx] = self._read_elements(self.get(values, "bufferView", "index", where + ".sparse.values"),
                                           self.get(values, "byteOffset", "index", where + ".sparse.values", 0),
                                           np_type, width, n, where + ".sparse.values")
        if acc.get("normalized") and norm is not None:
            out = np.maximum(out.astype(np.float64) / norm, -1.0)
        return out

    def _read_elements(self, view_index, offset, np_type, width, count, where) -> np.ndarray:
        data, start, length, stride = self.view_bytes(view_index)
        item = np.dtype(np_type).itemsize
        elem = item * width
        if stride is not None and stride != 0 and stride < elem:
            raise GltfError(f"{self.path}: {where} has {elem}-byte elements but bufferViews[{view_index}].byteStride "
                            f"is {stride}")
        stride = stride or elem
        needed = offset + (stride * (count - 1) + elem if count else 0)
        if needed > length:
            raise GltfError(f"{self.path}: {where} reads {needed} bytes from bufferViews[{view_index}], which has "
                            f"{length}")
        if stride == elem:
            arr = np.frombuffer(data, dtype=np_type, count=count * width, offset=start + offset)
            return arr.reshape(count, width)
        rows = np.lib.stride_tricks.as_strided(
            np.frombuffer(data, dtype=np.uint8, offset=start + offset, count=needed - offset),
            shape=(count, elem), strides=(stride, 1))
        return np.ascontiguousarray(rows).view(np_type).reshape(count, width)

    def tensor(self, index: int, width: int, what: str) -> torch.Tensor:
        """The accessor as a ``[count, width]`` tensor of ``self.dtype``; ``what`` names it in errors."""
        arr = self.accessor(index)
        if arr.shape[1] != width:
            raise GltfError(f"{self.path}: {what} (accessors[{index}]) has {arr.shape[1]} components per element; "
                            f"expected {width}")
        return torch.from_numpy(np.asarray(arr, dtype=np.float64)).to(self.dtype)

    # ------------------------------------------------------------------------------------- scene graph
    def scene(self, which: Optional[int], image_height: int) -> Scene:
        scenes = self.get(self.doc, "scenes", "list", "the document", [])
        nodes = self.get(self.doc, "nodes", "list", "the document", [])
        which = which if which is not None else self.get(self.doc, "scene", "index", "the document", 0)
        if scenes:
            roots = self.get(self._item("scenes", which), "nodes", "list", f"scenes[{which}]", [])
        else:
            roots = list(range(len(nodes)))
        out = Scene()
        stack = [(r, np.eye(4)) for r in reversed(roots)]
        seen = set()
        while stack:
            index, parent = stack.pop()
            node = self._item("nodes", index)
            if index in seen:  # glTF node hierarchies are strict trees: this also stops cycles
                raise GltfError(f"{self.path}: nodes[{index}] is reached twice (a cycle or a node with two parents)")
            seen.add(index)
            where = f"nodes[{index}]"
            world = parent @ self._local_matrix(node, where)
            if not np.isfinite(world).all():
                raise GltfError(f"{self.path}: {where} has a world transform with NaN or Inf entries")
            name = self.get(node, "name", "str", where, "") or f"node{index}"
            if "mesh" in node:
                for k, mesh in enumerate(self.mesh(self.get(node, "mesh", "index", where), world)):
                    out.add_mesh(self._unique(name if k == 0 else f"{name}-{k}"), mesh)
            if "camera" in node:
                camera = self.get(node, "camera", "index", where)
                out.add_camera(self._unique(node.get("name") or f"camera{camera}"),
                               self.camera(camera, world, image_height))
            ext = self.get(node, "extensions", "dict", where, {})
            punctual = self.get(ext, "KHR_lights_punctual", "dict", where + ".extensions", {})
            light = self.get(punctual, "light", "index", where + ".extensions.KHR_lights_punctual", None)
            if light is not None:
                out.add_light(self._unique(name), self.light(light, world))
            children = self.get(node, "children", "list", where, [])
            stack.extend((c, world) for c in reversed(children))
        return out

    def _local_matrix(self, node: dict, where: str) -> np.ndarray:
        if "matrix" in node:
            return np.asarray(self.get(node, "matrix", "numbers", where, length=16), dtype=np.float64).reshape(4, 4).T
        rotation = self.get(node, "rotation", "numbers", where, [0.0, 0.0, 0.0, 1.0], length=4)
        if math.hypot(*rotation) < 1e-12:
            raise GltfError(f"{self.path}: {where}.rotation is a zero quaternion")
        return _local_matrix(rotation, self.get(node, "scale", "numbers", where, [1.0, 1.0, 1.0], length=3),
                             self.get(node, "translation", "numbers", where, [0.0, 0.0, 0.0], length=3))

    def _unique(self, name: str) -> str:
        clean = "".join(c if c.isalnum() or c in "_-" else "_" for c in name) or "unnamed"
        n = self._names.get(clean, 0)
        self._names[clean] = n + 1
        return clean if n == 0 else f"{clean}-{n}"

    def mesh(self, index: int, world: np.ndarray) -> List[SceneMesh]:
        mesh = self._item("meshes", index)
        out = []
        to_world = torch.from_numpy(world).to(self.dtype)
        flip = np.linalg.det(world[:3, :3]) < 0  # a mirroring transform turns counter-clockwise faces around
        for p, prim in enumerate(self.get(mesh, "primitives", "list", f"meshes[{index}]", [])):
            where = f"meshes[{index}].primitives[{p}]"
            if not isinstance(prim, dict):
                raise GltfError(f"{self.path}: {where} must be an object; got {_short(prim)}")
            attrs = self.get(prim, "attributes", "dict", where)
            verts = self.tensor(self.get(attrs, "POSITION", "index", where + ".attributes"), 3, where + ".POSITION")
            V = verts.shape[0]
            if "indices" in prim:
                idx = self.accessor(self.get(prim, "indices", "index", where))
                if idx.shape[1] != 1 or idx.dtype.kind != "u":
                    raise GltfError(f"{self.path}: {where}.indices must be a SCALAR accessor of unsigned integers; "
                                    f"got {idx.shape[1]} {idx.dtype} components")
                idx = idx[:, 0].astype(np.int64)
            else:
                idx = np.arange(V, dtype=np.int64)
            mode = self.get(prim, "mode", "index", where, 4)
            faces = _triangles(idx, mode)
            if faces is None:
                warnings.warn(f"{self.path}: {where} has mode {mode} (points or lines); skipped")
                continue
            if faces.size and (faces.min() < 0 or faces.max() >= V):
                raise GltfError(f"{self.path}: {where} has indices outside [0, {V})")
            if flip:
                faces = faces[:, [0, 2, 1]]
            if faces.shape[0] == 0:
                continue
            optional = {}
            for name, width in (("TEXCOORD_0", 2), ("NORMAL", 3), ("TANGENT", 4)):
                if name in attrs:
                    t = self.tensor(self.get(attrs, name, "index", where + ".attributes"), width, f"{where}.{name}")
                    if t.shape[0] != V:
                        raise GltfError(f"{self.path}: {where}.{name} has {t.shape[0]} elements; POSITION has {V}")
                    optional[name] = t
            uv = optional.get("TEXCOORD_0")
            material, double_sided = (self.material(self.get(prim, "material", "index", where)) if "material" in prim
                                      else (Material(base_color_factor=torch.ones(4, dtype=self.dtype)), False))
            if uv is None and material.has_textures():
                warnings.warn(f"{self.path}: {where} has a textured material but no TEXCOORD_0; textures ignored")
                for s in TEXTURE_SLOTS:
                    setattr(material, s, None)
            out.append(self._make(where, SceneMesh, verts, torch.from_numpy(faces), material, uv=uv,
                                  normals=optional.get("NORMAL"), tangents=optional.get("TANGENT"),
                                  to_world=to_world.clone(), double_sided=double_sided))
        return out

    def material(self, index: int) -> Tuple[Material, bool]:
        m = self._item("materials", index)
        where = f"materials[{index}]"
        pbr = self.get(m, "pbrMetallicRoughness", "dict", where, {})
        pwhere = where + ".pbrMetallicRoughness"
        ext = self.get(m, "extensions", "dict", where, {})
        strength = self.get(ext, "KHR_materials_emissive_strength", "dict", where + ".extensions", {})
        ior = self.get(ext, "KHR_materials_ior", "dict", where + ".extensions", {})
        t = lambda v: torch.tensor(v, dtype=self.dtype)  # noqa: E731
        emissive = np.asarray(self.get(m, "emissiveFactor", "numbers", where, [0.0, 0.0, 0.0], length=3))
        emissive = emissive * self.get(strength, "emissiveStrength", "number", where + ".extensions."
                                       "KHR_materials_emissive_strength", 1.0)
        kw = dict(base_color_factor=t(self.get(pbr, "baseColorFactor", "numbers", pwhere, [1.0] * 4, length=4)),
                  metallic_factor=t(self.get(pbr, "metallicFactor", "number", pwhere, 1.0)),
                  roughness_factor=t(self.get(pbr, "roughnessFactor", "number", pwhere, 1.0)),
                  emissive_factor=t(emissive.tolist()),
                  ior=t(self.get(ior, "ior", "number", where + ".extensions.KHR_materials_ior", 1.5)))
        wraps = []
        for slot, owner, key in (("base_color_texture", pbr, "baseColorTexture"),
                                 ("metallic_roughness_texture", pbr, "metallicRoughnessTexture"),
                                 ("normal_texture", m, "normalTexture"), ("occlusion_texture", m, "occlusionTexture"),
                                 ("emissive_texture", m, "emissiveTexture")):
            info = self.get(owner, key, "dict", pwhere if owner is pbr else where, None)
            if info is None:
                continue
            iwhere = f"{where}.{key}"
            tex_coord = self.get(info, "texCoord", "index", iwhere, 0)
            if tex_coord != 0:
                warnings.warn(f"{self.path}: {where} {slot} uses TEXCOORD_{tex_coord}; read with TEXCOORD_0")
            if "KHR_texture_transform" in self.get(info, "extensions", "dict", iwhere, {}):
                warnings.warn(f"{self.path}: {where} {slot} has KHR_texture_transform; ignored")
            image, wrap = self.texture(self.get(info, "index", "index", iwhere))
            kw[slot] = image
            wraps.append(wrap)
            if key == "normalTexture":
                kw["normal_scale"] = t(self.get(info, "scale", "number", iwhere, 1.0))
            if key == "occlusionTexture":
                kw["occlusion_strength"] = t(self.get(info, "strength", "number", iwhere, 1.0))
        material = self._make(where, Material, **kw, wrap=wraps[0] if wraps else "repeat")
        return material, self.get(m, "doubleSided", "bool", where, False)

    def texture(self, index: int) -> Tuple[torch.Tensor, str]:
        tex = self._item("textures", index)
        where = f"textures[{index}]"
        sampler = self._item("samplers", self.get(tex, "sampler", "index", where)) if "sampler" in tex else {}
        wrap = _WRAP.get(self.get(sampler, "wrapS", "index", f"samplers[{tex.get('sampler')}]", 10497), "repeat")
        source = self.get(tex, "source", "index", where, None)
        if source is None:
            raise GltfError(f"{self.path}: {where} has no source image (extension-only images unsupported)")
        if source not in self._images:
            img = self._item("images", source)
            iwhere = f"images[{source}]"
            if "uri" in img:
                data = self._uri_bytes(self.get(img, "uri", "str", iwhere), iwhere)
            elif "bufferView" in img:
                buf, start, length, _ = self.view_bytes(self.get(img, "bufferView", "index", iwhere))
                data = buf[start:start + length]
            else:
                raise GltfError(f"{self.path}: {iwhere} has neither uri nor bufferView")
            self._images[source] = self._decode_image(data, source)
        return self._images[source], wrap

    def _decode_image(self, data: bytes, index: int) -> torch.Tensor:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(_io.BytesIO(data)) as im:
                im = im.convert("RGBA" if im.mode in ("RGBA", "LA", "P", "PA") else "RGB")
                arr = np.asarray(im, dtype=np.float32) / 255.0
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError, ValueError) as e:
            raise GltfError(f"{self.path}: images[{index}] cannot be decoded ({e})") from None
        return torch.from_numpy(arr.copy()).to(self.dtype)

    def camera(self, index: int, world: np.ndarray, image_height: int) -> Camera:
        cam = self._item("cameras", index)
        where = f"cameras[{index}]"
        c2w = world.copy()
        c2w[:3, :3] /= np.maximum(np.linalg.norm(c2w[:3, :3], axis=0, keepdims=True), 1e-300)  # not scaled
        w2c = opengl_c2w_to_world_to_cam(torch.from_numpy(c2w)).to(self.dtype)
        kind = cam.get("type")
        if kind == "perspective":
            p = self.get(cam, "perspective", "dict", where)
            pwhere = where + ".perspective"
            yfov = self.get(p, "yfov", "number", pwhere)
            aspect = self.get(p, "aspectRatio", "number", pwhere, 1.0)
            if not (0 < yfov < math.pi and 1e-6 < aspect < 1e6):
                raise GltfError(f"{self.path}: {pwhere} needs 0 < yfov < pi and a positive aspectRatio; got yfov="
                                f"{yfov}, aspectRatio={aspect}")
            width = max(1, round(image_height * aspect))
            near, far = self.get(p, "znear", "number", pwhere, 0.01), self.get(p, "zfar", "number", pwhere, 1e4)
            return self._make(where, Camera.from_fov, yfov, width, image_height, w2c, near=near, far=far)
        if kind == "orthographic":
            o = self.get(cam, "orthographic", "dict", where)
            owhere = where + ".orthographic"
            xmag, ymag = self.get(o, "xmag", "number", owhere), self.get(o, "ymag", "number", owhere)
            if not (xmag > 0 and ymag > 0 and 1e-6 < xmag / ymag < 1e6):
                raise GltfError(f"{self.path}: {owhere} needs positive xmag and ymag; got xmag={xmag}, ymag={ymag}")
            width = max(1, round(image_height * xmag / ymag))
            K = self._make(where, projection.K_orthographic, 2 * ymag, width, image_height, dtype=self.dtype)
            K[0, 0] = width / (2 * xmag)
            return self._make(where, Camera, K, w2c, width, image_height,
                              near=max(self.get(o, "znear", "number", owhere, 0.0), 1e-6),
                              far=self.get(o, "zfar", "number", owhere, 1e4), projection="orthographic")
        raise GltfError(f"{self.path}: {where} has type {_short(kind)}; expected perspective or orthographic")

    def light(self, index: int, world: np.ndarray):
        ext = self.get(self.doc, "extensions", "dict", "the document", {})
        punctual = self.get(ext, "KHR_lights_punctual", "dict", "extensions", {})
        lights = self.get(punctual, "lights", "list", "extensions.KHR_lights_punctual", [])
        if not 0 <= index < len(lights) or not isinstance(lights[index], dict):
            raise GltfError(f"{self.path}: KHR_lights_punctual light {index} does not exist")
        light = lights[index]
        where = f"KHR_lights_punctual.lights[{index}]"
        t = lambda v: torch.tensor(v, dtype=self.dtype)  # noqa: E731
        color = t(self.get(light, "color", "numbers", where, [1.0, 1.0, 1.0], length=3))
        intensity = t(self.get(light, "intensity", "number", where, 1.0))
        light_range = self.get(light, "range", "number", where, None)
        position = t(world[:3, 3].tolist())
        direction = -world[:3, 2] / max(np.linalg.norm(world[:3, 2]), 1e-12)
        kind = light.get("type")
        if kind == "point":
            return self._make(where, PointLight, position, intensity, color, range=light_range)
        if kind == "spot":
            spot = self.get(light, "spot", "dict", where, {})
            inner = self.get(spot, "innerConeAngle", "number", where + ".spot", 0.0)
            outer = self.get(spot, "outerConeAngle", "number", where + ".spot", math.pi / 4)
            return self._make(where, SpotLight, position, t(direction.tolist()), intensity, color, t(inner), t(outer),
                              range=light_range)
        if kind == "directional":
            return self._make(where, DirectionalLight, t(direction.tolist()), intensity, color)
        raise GltfError(f"{self.path}: {where} has type {_short(kind)}; expected point, spot or directional")


def _is_number(value) -> bool:
    """True for a finite JSON number (``true`` / ``false`` are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an integer beyond the float range
        return False


def _is_key(value, kind: type, table: dict) -> bool:
    """True if ``value`` has JSON type ``kind`` (booleans are not integers) and is a key of ``table``."""
    return isinstance(value, kind) and not isinstance(value, bool) and value in table


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _local_matrix(rotation: List[float], scale: List[float], translation: List[float]) -> np.ndarray:
    """A node's local transform from its glTF ``rotation`` (xyzw), ``scale`` and ``translation``."""
    T = np.eye(4)
    x, y, z, w = rotation  # glTF quaternions are xyzw; ours are wxyz
    R = quaternion_to_matrix(torch.tensor([w, x, y, z], dtype=torch.float64)).numpy()
    T[:3, :3] = R * np.asarray(scale)[None, :]
    T[:3, 3] = translation
    return T


def _triangles(idx: np.ndarray, mode: int) -> Optional[np.ndarray]:
    if mode == 4:
        return idx[: len(idx) // 3 * 3].reshape(-1, 3)
    if mode == 5:  # strip: every other triangle is wound the other way
        tri = np.stack([idx[:-2], idx[1:-1], idx[2:]], -1) if len(idx) >= 3 else np.zeros((0, 3), np.int64)
        tri[1::2] = tri[1::2][:, [1, 0, 2]]
        return tri
    if mode == 6:  # fan around the first index
        if len(idx) < 3:
            return np.zeros((0, 3), np.int64)
        return np.stack([np.full(len(idx) - 2, idx[0]), idx[1:-1], idx[2:]], -1)
    return None
