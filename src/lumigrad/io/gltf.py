"""glTF 2.0 reader (``.gltf`` with external or embedded buffers, and binary ``.glb``) into a :class:`Scene`.

What is read, once, into lumigrad's conventions:

* meshes: every triangle primitive (modes TRIANGLES, TRIANGLE_STRIP, TRIANGLE_FAN) becomes a
  :class:`SceneMesh` named after its node (``Node``, ``Node-1`` for a second primitive), with ``POSITION``,
  ``NORMAL``, ``TANGENT`` and ``TEXCOORD_0``, and the node's world transform as ``to_world``; sparse
  accessors and normalized integer attributes are decoded. Points and lines are skipped with a warning.
* materials: ``pbrMetallicRoughness`` (base colour, metallic, roughness and their textures), normal, occlusion
  and emissive maps, ``alphaMode`` and ``alphaCutoff`` (``Material.alpha_mode`` / ``alpha_cutoff``), ``doubleSided``,
  ``KHR_materials_ior``, ``KHR_materials_emissive_strength``, ``KHR_materials_specular`` (``specularFactor`` into
  ``Material.specular_factor``; ``specularTexture``, ``specularColorTexture`` and a ``specularColorFactor`` other
  than white are not modelled by lumigrad's BSDFs, which take ``F0`` from ``ior`` alone, and are named, as
  ``KHR_materials_specular.specularColorFactor``, in the warning below) and
  ``KHR_materials_transmission`` (``transmissionFactor`` into ``Material.transmission_factor``; a
  ``transmissionTexture`` is not read and is named in the warning below), ``KHR_materials_volume``'s absorption:
  with ``thicknessFactor > 0`` and a finite ``attenuationDistance`` ``d``, ``Material.interior`` becomes a
  :class:`~lumigrad.shading.HomogeneousMedium` with ``sigma_a = -ln(attenuationColor) / d`` (a colour channel
  of 0 is read as 1e-6: ``sigma_a = 13.8 / d``), ``sigma_s = 0`` (``thicknessTexture`` is not read and is named
  below; the thickness itself is not needed by a renderer that traces the closed mesh). glTF texture
  coordinates already have
  lumigrad's top-left origin, so no V flip is applied. Texture images are decoded with Pillow (PNG, JPEG) as
  stored, in [0, 1]; :func:`lumigrad.shading.sample_material` decodes sRGB where glTF says so.
* cameras: perspective (``yfov``, ``aspectRatio``) and orthographic (``xmag``, ``ymag``) into
  :class:`lumigrad.Camera` (the glTF camera looks down its local -z with +y up, the OpenGL frame); the
  image size is ``image_height`` pixels high and ``aspectRatio`` wide.
* lights: ``KHR_lights_punctual`` point, spot and directional lights (shining along the node's -z). A light
  with a negative ``intensity`` or ``color``, a ``range`` that is not positive, or a spot cone outside
  ``0 <= innerConeAngle <= outerConeAngle <= pi/2`` (with ``outerConeAngle > 0``) is refused, naming the light.
* textures: PNG (8 and 16 bits per channel; 16-bit ones keep their depth, divided by 65535) and JPEG, through
  :func:`lumigrad.io.image.decode_image`. Each image's size is checked on its header, before it is decoded,
  against the pixel budget of :mod:`lumigrad.limits`, and so is the running total over the file's images (a
  few kilobytes of PNG can declare gigapixels); the refusal is a :class:`GltfError` that is also a
  :class:`lumigrad.limits.BudgetError`.
* skins, morph targets and animations: a skinned or morphed primitive becomes a
  :class:`~lumigrad.scene.SkinnedMesh` (``skins`` with ``inverseBindMatrices``, the identity when missing as
  the specification says; ``JOINTS_n`` / ``WEIGHTS_n`` for every n; morph ``POSITION`` / ``NORMAL`` / ``TANGENT``
  (xyz; the handedness is not morphed) deltas and
  ``mesh.weights`` / ``node.weights``), and ``animations`` become ``scene.animations`` (node translation,
  rotation, scale and weights channels; STEP, LINEAR, CUBICSPLINE), posed by :meth:`Scene.at`. Animated nodes
  that are not skin joints carry the non-skinned meshes and cameras below them: ``scene.rigid_nodes``
  (:class:`~lumigrad.scene.RigidNodes`, the glTF camera frame turned into OpenCV's here) moves them in
  :meth:`Scene.at`. glTF's ``xyzw`` quaternions become ``wxyz`` here, once. See ``docs/animation.md``.
* node hierarchies: the world transforms of all nodes are composed at once, by pointer jumping over the tree
  (``O(N log depth)`` batched 4x4 products, no recursion): a 100,000-node chain reads in about a second on a busy
  2-core machine, JSON parsing included (it took about 15 s before).

Malformed files raise :class:`GltfError` naming the file and the element at fault (``nodes[3].translation
must be a list of 3 finite numbers``): every JSON field is type-checked where it is read, indices and byte
ranges are checked against what they point into before anything is sliced, node hierarchies must be trees
(a node reached twice, through a cycle or a second parent, is refused), and an accessor without a
``bufferView`` (all zeros) larger than ``MAX_IMPLICIT_ACCESSOR_BYTES`` is refused before allocating.

Not read, and named in **one** :class:`GltfWarning` per file, e.g. ``model.gltf: lumigrad ignores extensions
KHR_materials_sheen; vertex colours COLOR_0 (meshes[0].primitives[0])``: morph-target ``TANGENT`` deltas of primitives
without ``TANGENT``, animation of nodes
that move no mesh, camera or joint, lights below animated nodes (they stay at rest), animation paths other than
node TRS / weights, extensions other than ``KHR_lights_punctual``, ``KHR_materials_ior``, ``KHR_materials_emissive_strength``,
``KHR_materials_specular``, ``KHR_materials_transmission`` and ``KHR_materials_volume``
(those in ``extensionsUsed`` and any other ``extensions`` object in the file, ``KHR_texture_transform``
included), vertex colours ``COLOR_0``, textures read through
``TEXCOORD_1`` or higher (read with ``TEXCOORD_0``), per-texture wrap modes (one per material: the first
texture's ``wrapS``), point and line primitives (skipped), and textures of primitives without
``TEXCOORD_0``. An extension in ``extensionsRequired`` that lumigrad does not implement is an error
(:class:`GltfError`), as the glTF specification requires of a loader that does not support it.
"""

from __future__ import annotations

import base64
import binascii
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
from ..animation import TRACK_KINDS, Animation, Channel, KeyframeTrack, Skeleton
from ..conventions import OPENGL_TO_OPENCV, matrix_to_quaternion, opengl_c2w_to_world_to_cam, quaternion_to_matrix
from ..limits import BudgetError, check_pixel_samples
from .errors import ignored_features
from ._paths import is_json_number as _is_number
from .gltf_format import BIN_CHUNK, GLB_MAGIC, JSON_CHUNK, WRAP_MODES
from ..scene.lights import DirectionalLight, PointLight, SpotLight
from ..scene.scene import Scene, SceneMesh
from ..scene.rigid_nodes import RigidNodes
from ..scene.skinned import SkinnedMesh
from ..shading.material import TEXTURE_SLOTS, Material
from ..shading.medium import HomogeneousMedium

__all__ = ["GltfError", "GltfWarning", "read_gltf"]

_COMPONENTS = {5120: (np.int8, 127.0), 5121: (np.uint8, 255.0), 5122: (np.int16, 32767.0),
               5123: (np.uint16, 65535.0), 5125: (np.uint32, None), 5126: (np.float32, None)}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
MAX_IMPLICIT_ACCESSOR_BYTES = 1 << 26  # an accessor without a bufferView (all zeros) is refused beyond this
_REQUIRED = object()
_JSON_TYPES = {"dict": dict, "list": list, "str": str, "bool": bool}
_KIND_TEXT = {"index": "a non-negative integer", "number": "a finite number",
              "numbers": "a list of {length} finite numbers", "dict": "an object", "list": "an array",
              "str": "a string", "bool": "true or false"}


# Extensions the reader implements (the constructor refuses other required ones; used ones are warned about).
_SUPPORTED_EXTENSIONS = frozenset({"KHR_lights_punctual", "KHR_materials_ior", "KHR_materials_emissive_strength",
                                   "KHR_materials_specular", "KHR_materials_transmission", "KHR_materials_volume"})
_ALPHA_MODES = ("OPAQUE", "MASK", "BLEND")


class GltfError(ValueError):
    """A glTF file that cannot be read, with the file and the element at fault in the message."""


class GltfWarning(UserWarning):
    """Parts of a glTF file that lumigrad does not read (one warning per file names them all)."""


class _GltfBudgetError(GltfError, BudgetError):
    """A glTF file whose textures exceed the pixel budget (both a GltfError and a BudgetError)."""


def read_gltf(path: str | os.PathLike, *, scene: Optional[int] = None, image_height: int = 512,
              dtype: torch.dtype = torch.float32, trust_paths: bool = False) -> Scene:
    """Read a glTF 2.0 file (``.gltf`` or ``.glb``) into a :class:`lumigrad.Scene`.

    Args:
        path: the file; external buffers and images are resolved next to it.
        scene: which of the file's scenes (default: its ``scene``, else the first).
        image_height: pixel height of the cameras read from the file.
        dtype: floating dtype of every tensor.
        trust_paths: also read buffer / image URIs that are absolute or lead outside the file's folder (only
            for files you trust). By default they are refused, as are symbolic links pointing outside; FIFOs,
            devices and folders are always refused.

    Returns:
        A :class:`Scene` with ``meshes``, ``cameras`` and ``lights`` named after their nodes (characters
        other than letters, digits, ``_`` and ``-`` become ``_``; repeats get ``-1``, ``-2`` ...).

    Raises:
        GltfError: malformed JSON or binary container, missing buffers, out-of-range indices or accessors,
        unsupported required extensions.
    """
    return _Reader(Path(path), dtype, trust_paths=trust_paths).scene(scene, image_height)


class _Reader:
    def __init__(self, path: Path, dtype: torch.dtype, trust_paths: bool = False):
        self.path, self.dtype, self.trust_paths = path, dtype, trust_paths
        self.doc, self.glb_bin = read_container(path)
        if not isinstance(self.doc, dict):
            raise GltfError(f"{path}: the top-level JSON value must be an object; got {type(self.doc).__name__}")
        asset = self.get(self.doc, "asset", "dict", "the document", {})
        version = str(asset.get("version", ""))
        if not version.startswith("2."):
            raise GltfError(f"{path}: asset.version is {version!r}; only glTF 2.x is supported")
        required = self.get(self.doc, "extensionsRequired", "list", "the document", [])
        if not all(isinstance(name, str) for name in required):
            raise GltfError(f"{path}: extensionsRequired must be a list of strings; got {required!r:.80}")
        missing = sorted(set(required) - _SUPPORTED_EXTENSIONS)
        if missing:
            shown = ", ".join(_short(name) for name in missing[:8])
            more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
            raise GltfError(f"{path}: requires unsupported extensions [{shown}{more}]")
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
    def _item(self, kind: str, index) -> dict:
        items = self.get(self.doc, kind, "list", "the document", [])
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(items):
            raise GltfError(f"{self.path}: {kind}[{_short(index)}] does not exist ({len(items)} {kind})")
        if not isinstance(items[index], dict):
            raise GltfError(f"{self.path}: {kind}[{index}] must be an object; got {_short(items[index])}")
        return items[index]

    def _uri_bytes(self, uri: str, what: str, expected: Optional[int] = None) -> bytes:
        """The bytes a buffer / image URI names: a base64 data URI, or a regular file inside the file's folder
        (:mod:`lumigrad.io._paths`; absolute paths and escapes only with ``trust_paths``). Refusals are
        ``GltfError`` and ``ConfinementError`` at once."""
        from urllib.parse import unquote, urlparse

        from ._paths import confined_path, open_regular_file

        if uri.startswith("data:"):
            header, _, payload = uri.partition(",")
            if not header.endswith(";base64"):
                raise GltfError(f"{self.path}: {what} has a data URI that is not base64")
            try:
                return base64.b64decode(payload)
            except binascii.Error as e:
                raise GltfError(f"{self.path}: {what} has a data URI with invalid base64 ({e})") from None
        parsed = urlparse(uri)
        if parsed.scheme not in ("", "file") or (parsed.scheme == "file" and parsed.netloc not in ("", "localhost")) \
                or "\0" in unquote(uri):
            raise GltfError(f"{self.path}: {what} has URI {_short(uri)}; only relative paths inside the file's "
                            "folder (or data URIs) are read")
        name = unquote(parsed.path if parsed.scheme == "file" else uri)
        file = confined_path(self.path.parent, name, source=self.path, what=f"{what} URI", trusted=self.trust_paths,
                             base=GltfError)
        try:
            with open_regular_file(file, source=self.path, what=f"{what} URI", base=GltfError) as fh:
                size = os.fstat(fh.fileno()).st_size
                if expected is not None and size < expected:
                    raise GltfError(f"{self.path}: {what} declares {expected} bytes but {file.name} has {size} "
                                    "(truncated or wrong file)")
                return fh.read()
        except FileNotFoundError:
            raise GltfError(f"{self.path}: {what} refers to {file}, which does not exist") from None
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
        """``[count, width]`` float64 (normalized integers mapped to [0, 1] / [-1, 1]) or integer array.

        Decoded once per file (a mesh used by many nodes is not decoded again); callers must not modify it.
        """
        cache = self.__dict__.setdefault("_accessor_cache", {})
        if index not in cache:
            cache[index] = self._accessor(index)
        return cache[index]

    def _accessor(self, index: int) -> np.ndarray:
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
        return torch.from_numpy(np.array(arr, dtype=np.float64)).to(self.dtype)  # a copy: arr may be cached

    # ------------------------------------------------------------------------------------- scene graph
    def scene(self, which: Optional[int], image_height: int) -> Scene:
        self._notes: Dict[str, Dict[str, None]] = {}  # ignored feature -> where (ordered, no repeats)
        self._texels = 0  # pixels of the textures decoded so far, against the pixel budget
        scenes = self.get(self.doc, "scenes", "list", "the document", [])
        nodes = self.get(self.doc, "nodes", "list", "the document", [])
        which = which if which is not None else self.get(self.doc, "scene", "index", "the document", 0)
        if scenes:
            roots = self.get(self._item("scenes", which), "nodes", "list", f"scenes[{which}]", [])
        else:
            roots = list(range(len(nodes)))
        order, parents = self._walk(roots)
        world = self._world_transforms(order, parents)
        self._order, self._world = order, world
        self._position = {index: k for k, index in enumerate(order)}
        self._parent = {index: (order[parents[k]] if parents[k] >= 0 else -1) for k, index in enumerate(order)}
        self._node_names = self._name_nodes(nodes)
        self._skeletons: Dict[int, Skeleton] = {}
        self._deformed_nodes: set = set()  # node names whose animation a mesh of this scene follows
        out = Scene()
        out.animations = self.animations()
        hanging: Dict[str, List[Tuple[str, int]]] = {"meshes": [], "cameras": [], "lights": []}
        for k, index in enumerate(order):
            node = nodes[index]
            if "mesh" not in node and "camera" not in node and "extensions" not in node:
                continue
            where = f"nodes[{index}]"
            name = node.get("name") or f"node{index}"
            if "mesh" in node:
                skin = self.get(node, "skin", "index", where, None)
                for j, mesh in enumerate(self.mesh(self.get(node, "mesh", "index", where), world[k].copy(),
                                                   node=index, skin=skin)):
                    mesh_name = self._unique(name if j == 0 else f"{name}-{j}")
                    out.add_mesh(mesh_name, mesh)
                    if skin is None:  # the joints place a skinned mesh, not its node
                        hanging["meshes"].append((mesh_name, index))
            if "camera" in node:
                camera = self.get(node, "camera", "index", where)
                camera_name = self._unique(node.get("name") or f"camera{camera}")
                out.add_camera(camera_name, self.camera(camera, world[k].copy(), image_height))
                hanging["cameras"].append((camera_name, index))
            ext = self.get(node, "extensions", "dict", where, {})
            punctual = self.get(ext, "KHR_lights_punctual", "dict", where + ".extensions", {})
            light = self.get(punctual, "light", "index", where + ".extensions.KHR_lights_punctual", None)
            if light is not None:
                out.add_light(self._unique(name), self.light(light, world[k].copy()))
                hanging["lights"].append((name, index))
        out.rigid_nodes = self.rigid_nodes(out.animations, hanging)
        moved = set(out.rigid_nodes.names if out.rigid_nodes is not None else ()) | self._deformed_nodes
        for target in sorted({c.target for a in out.animations.values() for c in a.channels} - moved):
            self._note("animation of nodes that move no mesh, camera or joint (lights are not animated)",
                       f"node {target}")
        self._warn_ignored()
        return out

    def rigid_nodes(self, animations: Dict[str, Animation], hanging: Dict[str, List[Tuple[str, int]]]
                    ) -> Optional[RigidNodes]:
        """The nodes whose translation / rotation / scale some animation drives and that carry (themselves or
        below them) a non-skinned mesh or a camera, as :class:`RigidNodes` (None if there are none). ``hanging``
        lists ``(name in the scene, node index)`` per read mesh, camera and light; the camera offsets turn the
        glTF camera frame (OpenGL axes) into OpenCV's, once, here."""
        index_of = {n: i for i, n in enumerate(self._node_names)}
        animated = {index_of[c.target] for a in animations.values() for c in a.channels
                    if c.path != "weights" and index_of.get(c.target) in self._position}
        if not animated:
            return None

        def up_to(node: int, stop: int) -> np.ndarray:  # product of local matrices from below ``stop`` to ``node``
            M = np.eye(4)
            while node != stop:
                M = self._local[self._position[node]] @ M
                node = self._parent[node]
            return M

        def anchor(node: int) -> int:  # nearest animated ancestor-or-self, -1 for none
            while node >= 0 and node not in animated:
                node = self._parent[node]
            return node

        links = {}
        for group, items in hanging.items():
            for name, node in items:
                if anchor(node) < 0:
                    continue
                if group == "lights":
                    self._note("lights below animated nodes (not moved by Scene.at)", f"light {name}")
                    continue
                links.setdefault(group, []).append((name, node, anchor(node)))
        members = set()
        for group_links in links.values():
            for _, _, a in group_links:
                while a >= 0:
                    members.add(a)
                    a = anchor(self._parent[a])
        if not members:
            return None
        members = sorted(members, key=self._position.get)  # depth-first order: parents first
        position = {node: j for j, node in enumerate(members)}
        parents = [anchor(self._parent[n]) for n in members]
        above = [up_to(self._parent[n], p) for n, p in zip(members, parents)]
        trs = [self._node_trs(n) for n in members]
        f = lambda x: torch.from_numpy(np.ascontiguousarray(x)).to(self.dtype)  # noqa: E731
        gl_to_cv = np.diag(list(OPENGL_TO_OPENCV) + [1.0])
        offsets = {group: {name: (position[a], f(up_to(node, a) @ (gl_to_cv if group == "cameras" else np.eye(4))))
                           for name, node, a in group_links} for group, group_links in links.items()}
        return self._make("the animated nodes", RigidNodes, [self._node_names[n] for n in members],
                          [position.get(p, -1) for p in parents], f(np.stack(above)),
                          f(np.stack([x[0] for x in trs])), f(np.stack([x[1] for x in trs])),
                          f(np.stack([x[2] for x in trs])), offsets.get("meshes", {}), offsets.get("cameras", {}))

    def _walk(self, roots: list) -> Tuple[List[int], np.ndarray]:
        """The nodes reached from ``roots``, depth first with children in file order, and for each the position
        of its parent in that order (-1 for a root). Iterative; a node reached twice (a cycle or a second
        parent) is refused, since glTF node hierarchies are strict trees."""
        nodes = self.get(self.doc, "nodes", "list", "the document", [])
        order: List[int] = []
        parents: List[int] = []
        seen = set()
        stack = [(r, -1) for r in reversed(roots)]
        while stack:
            index, parent = stack.pop()
            if type(index) is int and 0 <= index < len(nodes) and type(nodes[index]) is dict:  # the common case
                node = nodes[index]
            else:
                node = self._item("nodes", index)  # raises for a bad index or node
            if index in seen:
                raise GltfError(f"{self.path}: nodes[{index}] is reached twice (a cycle or a node with two parents)")
            seen.add(index)
            if "name" in node and type(node["name"]) is not str:
                self.get(node, "name", "str", f"nodes[{index}]")  # raises
            order.append(index)
            parents.append(parent)
            children = node.get("children")
            if children is not None and type(children) is not list:
                self.get(node, "children", "list", f"nodes[{index}]")  # raises
            if children:
                position = len(order) - 1
                stack.extend((c, position) for c in reversed(children))
        return order, np.asarray(parents, dtype=np.int64)

    def _world_transforms(self, order: List[int], parents: np.ndarray) -> np.ndarray:
        """World transforms ``[N, 4, 4]`` of the nodes in ``order``: every node's ``matrix`` or TRS read and
        checked, local matrices built in one batch, then composed down the tree by :func:`_compose`."""
        n = len(order)
        if n == 0:
            return np.zeros((0, 4, 4))
        nodes = self.doc["nodes"]
        rotation = [(0.0, 0.0, 0.0, 1.0)] * n
        scale = [(1.0, 1.0, 1.0)] * n
        translation = [(0.0, 0.0, 0.0)] * n
        matrix_at: List[int] = []
        matrices = []
        fields = (("rotation", 4, rotation), ("scale", 3, scale), ("translation", 3, translation))
        for k, index in enumerate(order):
            node = nodes[index]
            if "matrix" in node:
                matrix_at.append(k)
                matrices.append(self.get(node, "matrix", "numbers", f"nodes[{index}]", length=16))
                continue
            for key, length, values in fields:
                value = node.get(key)
                if value is None and key not in node:
                    continue
                if type(value) is list and len(value) == length and all(type(v) is float and v - v == 0.0
                                                                        for v in value):
                    values[k] = value  # finite floats (v - v is NaN for Inf and NaN): the fast path
                else:
                    values[k] = self.get(node, key, "numbers", f"nodes[{index}]", length=length)
        xyzw = np.asarray(rotation, dtype=np.float64).reshape(n, 4)
        is_trs = np.ones(n, dtype=bool)
        is_trs[matrix_at] = False
        with np.errstate(over="ignore", under="ignore"):
            zero = is_trs & (np.linalg.norm(xyzw, axis=-1) < 1e-12)
        if zero.any():
            raise GltfError(f"{self.path}: nodes[{order[int(np.argmax(zero))]}].rotation is a zero quaternion")
        local = np.zeros((n, 4, 4))
        wxyz = torch.from_numpy(np.ascontiguousarray(xyzw[:, [3, 0, 1, 2]]))  # glTF quaternions are xyzw
        local[:, :3, :3] = quaternion_to_matrix(wxyz).numpy() * np.asarray(scale, dtype=np.float64).reshape(n, 1, 3)
        local[:, :3, 3] = np.asarray(translation, dtype=np.float64).reshape(n, 3)
        local[:, 3, 3] = 1.0
        if matrix_at:
            local[matrix_at] = np.asarray(matrices, dtype=np.float64).reshape(-1, 4, 4).transpose(0, 2, 1)
        self._local = local  # node local matrices, in the order of ``order`` (rigid node animation reads them)
        world = _compose(local, parents)
        finite = np.isfinite(world).all(axis=(1, 2))
        if not finite.all():
            index = order[int(np.argmin(finite))]
            raise GltfError(f"{self.path}: nodes[{index}] has a world transform with NaN or Inf entries")
        return world

    # ------------------------------------------------------------------------------- ignored features
    def _note(self, feature: str, where: str) -> None:
        """Record that ``feature`` (at ``where``) is not read; :meth:`_warn_ignored` names it once."""
        self._notes.setdefault(feature, {})[where] = None

    def _extensions_in_file(self) -> set:
        """Names in ``extensionsUsed`` and keys of every ``extensions`` object in the file (iteratively)."""
        used = self.doc.get("extensionsUsed")
        names = {x for x in used if isinstance(x, str)} if isinstance(used, list) else set()
        stack = [self.doc]
        while stack:
            obj = stack.pop()
            if isinstance(obj, dict):
                for key, value in obj.items():
                    if key == "extras":
                        continue
                    if key == "extensions" and isinstance(value, dict):
                        names.update(value)
                    if isinstance(value, (dict, list)):
                        stack.append(value)
            elif obj and isinstance(obj[0], (dict, list)):  # glTF arrays are of one type: skip number lists
                stack.extend(v for v in obj if isinstance(v, (dict, list)))
        return names

    def _warn_ignored(self) -> None:
        """Warn once, naming every part of the file that lumigrad does not read."""
        parts = []
        unsupported = sorted(_short(x).strip("'") for x in self._extensions_in_file() - _SUPPORTED_EXTENSIONS)
        if unsupported:
            shown = unsupported[:8] + ([f"... {len(unsupported)} in all"] if len(unsupported) > 8 else [])
            parts.append(f"extension{'s' if len(unsupported) > 1 else ''} {', '.join(shown)}")
        parts += ignored_features(self._notes)
        if parts:
            warnings.warn(f"{self.path}: lumigrad ignores {'; '.join(parts)}", GltfWarning, stacklevel=4)

    def _unique(self, name: str) -> str:
        clean = "".join(c if c.isalnum() or c in "_-" else "_" for c in name) or "unnamed"
        n = self._names.get(clean, 0)
        self._names[clean] = n + 1
        return clean if n == 0 else f"{clean}-{n}"

    # --------------------------------------------------------------------- skins, morphs, animations
    def _name_nodes(self, nodes: list) -> List[str]:
        """A unique name per node (its ``name`` made safe, else ``node<i>``): joint names and animation targets."""
        seen: Dict[str, int] = {}
        out = []
        for i, node in enumerate(nodes):
            raw = node.get("name") if isinstance(node, dict) and isinstance(node.get("name"), str) else ""
            clean = "".join(c if c.isalnum() or c in "_-" else "_" for c in raw) or f"node{i}"
            n = seen.get(clean, 0)
            seen[clean] = n + 1
            out.append(clean if n == 0 else f"{clean}-{n}")
        return out

    def _node_trs(self, index: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rest ``(translation [3], rotation wxyz [4], scale [3])`` of ``nodes[index]`` (a ``matrix`` is
        decomposed; glTF requires TRS for animated nodes, and a joint matrix with shear is refused)."""
        node = self._item("nodes", index)
        where = f"nodes[{index}]"
        if "matrix" in node:
            M = np.asarray(self.get(node, "matrix", "numbers", where, length=16), dtype=np.float64).reshape(4, 4).T
            t = M[:3, 3].copy()
            scale = np.linalg.norm(M[:3, :3], axis=0)
            if (scale < 1e-12).any():
                raise GltfError(f"{self.path}: {where}.matrix has a zero scale; a joint needs an invertible matrix")
            R = M[:3, :3] / scale
            if np.linalg.det(R) < 0:
                scale[0], R[:, 0] = -scale[0], -R[:, 0]
            if not np.allclose(R.T @ R, np.eye(3), atol=1e-5):
                raise GltfError(f"{self.path}: {where}.matrix has shear, which a joint's TRS cannot hold")
            q = matrix_to_quaternion(torch.from_numpy(R)).numpy()
            return t, q, scale
        t = np.asarray(self.get(node, "translation", "numbers", where, [0.0] * 3, length=3))
        xyzw = np.asarray(self.get(node, "rotation", "numbers", where, [0.0, 0.0, 0.0, 1.0], length=4))
        s = np.asarray(self.get(node, "scale", "numbers", where, [1.0] * 3, length=3))
        q = xyzw[[3, 0, 1, 2]]  # glTF quaternions are xyzw; lumigrad's are wxyz
        return t, q / max(np.linalg.norm(q), 1e-300), s

    def skeleton(self, index: int) -> Skeleton:
        """``skins[index]`` as a :class:`Skeleton`: its joints first (so ``JOINTS_0`` indices keep their
        meaning), then the non-joint nodes between them and the scene root that cannot be folded into
        ``root_transform`` (the animated ones, and those below a branching); ``inverseBindMatrices`` default to
        the identity, as the specification says."""
        if index in self._skeletons:
            return self._skeletons[index]
        skin = self._item("skins", index)
        where = f"skins[{index}]"
        joints = self.get(skin, "joints", "list", where)
        if not joints:
            raise GltfError(f"{self.path}: {where}.joints is empty")
        for j, node in enumerate(joints):
            if not (isinstance(node, int) and not isinstance(node, bool)) or node not in self._position:
                raise GltfError(f"{self.path}: {where}.joints[{j}] = {_short(node)} is not a node of this scene")
        if len(set(joints)) != len(joints):
            raise GltfError(f"{self.path}: {where}.joints lists a node twice")
        J = len(joints)
        if "inverseBindMatrices" in skin:
            ibm = self.tensor(self.get(skin, "inverseBindMatrices", "index", where), 16,
                              f"{where}.inverseBindMatrices")
            if ibm.shape[0] < J:
                raise GltfError(f"{self.path}: {where}.inverseBindMatrices has {ibm.shape[0]} matrices for {J} joints")
            ibm = ibm[:J].reshape(J, 4, 4).transpose(1, 2)  # glTF matrices are column-major
        else:
            ibm = torch.eye(4, dtype=self.dtype).repeat(J, 1, 1)
        members = list(joints)
        member_set = set(members)
        for node in joints:  # every ancestor of a joint, in the order first met
            up = self._parent[node]
            while up >= 0 and up not in member_set:
                members.append(up)
                member_set.add(up)
                up = self._parent[up]
        joint_set, animated = set(joints), self._animated_nodes
        while True:  # fold a single non-joint, non-animated top node into root_transform
            tops = [n for n in members if self._parent[n] not in member_set]
            if len(tops) != 1 or tops[0] in joint_set or tops[0] in animated:
                break
            members.remove(tops[0])
            member_set.discard(tops[0])
        above = self._parent[tops[0]]  # all tops share one parent: the last folded node, or the scene root
        root = self._world[self._position[above]] if above >= 0 else np.eye(4)
        position = {node: j for j, node in enumerate(members)}
        parents = [position.get(self._parent[node], -1) for node in members]
        trs = [self._node_trs(node) for node in members]
        f = lambda k: torch.from_numpy(np.stack([x[k] for x in trs])).to(self.dtype)  # noqa: E731
        extra = len(members) - J
        inverse_bind = torch.cat([ibm, torch.eye(4, dtype=self.dtype).repeat(extra, 1, 1)])
        sk = self._make(where, Skeleton, [self._node_names[n] for n in members], torch.tensor(parents), f(0), f(1),
                        f(2), inverse_bind, torch.from_numpy(root.copy()).to(self.dtype))
        self._deformed_nodes.update(sk.names)
        self._skeletons[index] = sk
        return sk

    def _vertex_sets(self, attrs: dict, prefix: str, where: str, V: int, integer: bool) -> Optional[np.ndarray]:
        """``JOINTS_0``, ``JOINTS_1`` ... (or ``WEIGHTS_*``) side by side, ``[V, 4 * sets]``; None if absent."""
        sets = []
        while f"{prefix}_{len(sets)}" in attrs:
            name = f"{prefix}_{len(sets)}"
            arr = self.accessor(self.get(attrs, name, "index", where + ".attributes"))
            if arr.shape != (V, 4):
                raise GltfError(f"{self.path}: {where}.{name} must be a VEC4 accessor of {V} elements; got "
                                f"{arr.shape[0]} x {arr.shape[1]}")
            if integer and arr.dtype.kind != "u":
                raise GltfError(f"{self.path}: {where}.{name} must hold unsigned integers; got {arr.dtype}")
            sets.append(np.asarray(arr, dtype=np.int64 if integer else np.float64))
        return np.concatenate(sets, axis=1) if sets else None

    def _morph_targets(self, prim: dict, mesh: dict, node: int, where: str, mwhere: str, V: int,
                       has_tangents: bool):
        """``(position deltas [M, V, 3], normal deltas [M, V, 3] or None, tangent deltas [M, V, 3] or None,
        default weights [M])`` or None. Tangent deltas are xyz only (glTF: the handedness is not morphed)."""
        targets = self.get(prim, "targets", "list", where, [])
        if not targets:
            return None
        pos, nrm, tan = [], [], []
        for m, target in enumerate(targets):
            twhere = f"{where}.targets[{m}]"
            if not isinstance(target, dict):
                raise GltfError(f"{self.path}: {twhere} must be an object; got {_short(target)}")
            if "TANGENT" in target and not has_tangents:
                self._note("morph target TANGENT deltas of primitives without TANGENT", twhere)
            for name, out in (("POSITION", pos), ("NORMAL", nrm), ("TANGENT", tan)):
                if name in target and (name != "TANGENT" or has_tangents):
                    t = self.tensor(self.get(target, name, "index", twhere), 3, f"{twhere}.{name}")
                    if t.shape[0] != V:
                        raise GltfError(f"{self.path}: {twhere}.{name} has {t.shape[0]} elements; POSITION has {V}")
                    out.append(t)
                else:
                    out.append(torch.zeros(V, 3, dtype=self.dtype))
        M = len(targets)
        owner = mwhere
        weights = self.get(mesh, "weights", "numbers", mwhere, [0.0] * M)
        if node >= 0 and "weights" in self._item("nodes", node):
            owner = f"nodes[{node}]"
            weights = self.get(self._item("nodes", node), "weights", "numbers", owner)
        if len(weights) != M:
            raise GltfError(f"{self.path}: {owner}.weights has {len(weights)} values for {M} morph targets")
        has_normals = any("NORMAL" in t for t in targets)
        has_tangent_deltas = has_tangents and any("TANGENT" in t for t in targets)
        return (torch.stack(pos), (torch.stack(nrm) if has_normals else None),
                (torch.stack(tan) if has_tangent_deltas else None), torch.tensor(weights, dtype=self.dtype))

    @property
    def _animated_nodes(self) -> set:
        """Node indices that some animation channel drives (translation / rotation / scale)."""
        if not hasattr(self, "_animated_cache"):
            found = set()
            anims = self.doc.get("animations")
            for anim in anims if isinstance(anims, list) else []:
                channels = anim.get("channels") if isinstance(anim, dict) else None
                for ch in channels if isinstance(channels, list) else []:
                    target = ch.get("target") if isinstance(ch, dict) else None
                    if isinstance(target, dict) and isinstance(target.get("node"), int):
                        found.add(target["node"])
            self._animated_cache = found
        return self._animated_cache

    def animations(self) -> Dict[str, Animation]:
        """Every animation of the file, ``{name: Animation}`` (name: its ``name`` made safe, else
        ``animation<i>``); channel targets are node names (:meth:`_name_nodes`), rotations converted to wxyz."""
        out: Dict[str, Animation] = {}
        taken: Dict[str, int] = {}
        for a, anim in enumerate(self.get(self.doc, "animations", "list", "the document", [])):
            where = f"animations[{a}]"
            if not isinstance(anim, dict):
                raise GltfError(f"{self.path}: {where} must be an object; got {_short(anim)}")
            raw = anim.get("name") if isinstance(anim.get("name"), str) else ""
            name = "".join(c if c.isalnum() or c in "_-" else "_" for c in raw) or f"animation{a}"
            n = taken.get(name, 0)
            taken[name] = n + 1
            name = name if n == 0 else f"{name}-{n}"
            samplers = self.get(anim, "samplers", "list", where, [])
            channels = []
            for c, ch in enumerate(self.get(anim, "channels", "list", where, [])):
                cwhere = f"{where}.channels[{c}]"
                if not isinstance(ch, dict):
                    raise GltfError(f"{self.path}: {cwhere} must be an object; got {_short(ch)}")
                target = self.get(ch, "target", "dict", cwhere)
                path = self.get(target, "path", "str", cwhere + ".target")
                if path not in TRACK_KINDS or "node" not in target:
                    self._note(f"animation paths other than node {'/'.join(TRACK_KINDS)}", f"{cwhere} ({path})")
                    continue
                node = self.get(target, "node", "index", cwhere + ".target")
                self._item("nodes", node)  # raises for a bad index
                s_index = self.get(ch, "sampler", "index", cwhere)
                if s_index >= len(samplers) or not isinstance(samplers[s_index], dict):
                    raise GltfError(f"{self.path}: {cwhere}.sampler {s_index} does not exist in {where}.samplers")
                channels.append(Channel(self._node_names[node],
                                        self._track(samplers[s_index], path, f"{where}.samplers[{s_index}]",
                                                    f"{name}/{cwhere}")))
            out[name] = self._make(where, Animation, name, channels)
        return out

    def _track(self, sampler: dict, path: str, where: str, label: str) -> KeyframeTrack:
        interpolation = self.get(sampler, "interpolation", "str", where, "LINEAR")
        if interpolation not in ("LINEAR", "STEP", "CUBICSPLINE"):
            raise GltfError(f"{self.path}: {where}.interpolation must be LINEAR, STEP or CUBICSPLINE; got "
                            f"{_short(interpolation)}")
        times = self.tensor(self.get(sampler, "input", "index", where), 1, f"{where}.input")[:, 0]
        values = self.accessor(self.get(sampler, "output", "index", where))
        N = times.shape[0]
        per_key = 3 if interpolation == "CUBICSPLINE" else 1
        width = {"translation": 3, "rotation": 4, "scale": 3}.get(path)
        total = values.shape[0] * values.shape[1]
        if N == 0 or (width is not None and values.shape[1] != width) or total % (N * per_key):
            raise GltfError(f"{self.path}: {where}.output has {values.shape[0]} x {values.shape[1]} values, which does "
                            f"not fit {N} {interpolation} keyframes of {path}")
        C = total // (N * per_key)
        v = torch.from_numpy(np.array(values, dtype=np.float64).reshape(N, per_key, C))
        if path == "rotation":
            v = v[..., [3, 0, 1, 2]]  # glTF quaternions are xyzw; lumigrad's are wxyz
        v = v.to(self.dtype)
        if per_key == 1:
            v = v[:, 0]
        return self._make(where, KeyframeTrack, times, v, interpolation, path, name=label)

    def mesh(self, index: int, world: np.ndarray, node: int = -1, skin: Optional[int] = None) -> List[SceneMesh]:
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
                self._note("point and line primitives (skipped)", f"{where} (mode {mode})")
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
            if "COLOR_0" in attrs:
                self._note("vertex colours COLOR_0", where)
            uv = optional.get("TEXCOORD_0")
            material, double_sided = (self.material(self.get(prim, "material", "index", where)) if "material" in prim
                                      else (Material(base_color_factor=torch.ones(4, dtype=self.dtype)), False))
            if uv is None and material.has_textures():
                self._note("textures of primitives without TEXCOORD_0", where)
                for s in TEXTURE_SLOTS:
                    setattr(material, s, None)
            common = dict(uv=uv, normals=optional.get("NORMAL"), tangents=optional.get("TANGENT"),
                          double_sided=double_sided)
            morph = self._morph_targets(prim, mesh, node, where, f"meshes[{index}]", V, "TANGENT" in optional)
            if skin is None and morph is None:
                out.append(self._make(where, SceneMesh, verts, torch.from_numpy(faces), material,
                                      to_world=to_world.clone(), **common))
                continue
            deform = {}
            if morph is not None:
                deform.update(morph_deltas=morph[0], morph_normal_deltas=morph[1], morph_tangent_deltas=morph[2],
                              morph_weights=morph[3])
                if node >= 0:
                    self._deformed_nodes.add(self._node_names[node])
            if skin is not None:
                joints = self._vertex_sets(attrs, "JOINTS", where, V, integer=True)
                weights = self._vertex_sets(attrs, "WEIGHTS", where, V, integer=False)
                if joints is None or weights is None or joints.shape != weights.shape:
                    raise GltfError(f"{self.path}: {where} is skinned (nodes[{node}].skin) but lacks matching "
                                    "JOINTS_n / WEIGHTS_n attributes")
                # glTF ignores the node transform of a skinned mesh: the joints place it in the world
                deform.update(skeleton=self.skeleton(skin), joints=torch.from_numpy(joints),
                              skin_weights=torch.from_numpy(weights).to(self.dtype))
                skinned_to_world = torch.eye(4, dtype=self.dtype)
                if flip:  # faces were turned for the node's mirroring, which skinning does not apply
                    faces = faces[:, [0, 2, 1]]
            else:
                skinned_to_world = to_world.clone()
            out.append(self._make(where, SkinnedMesh, verts, torch.from_numpy(faces), material,
                                  to_world=skinned_to_world, node=self._node_names[node] if node >= 0 else "",
                                  **common, **deform))
        return out

    def material(self, index: int) -> Tuple[Material, bool]:
        m = self._item("materials", index)
        where = f"materials[{index}]"
        label = f"material {_short(m['name'])}" if isinstance(m.get("name"), str) and m["name"] else where
        alpha_mode = self.get(m, "alphaMode", "str", where, "OPAQUE")
        if alpha_mode not in _ALPHA_MODES:
            raise GltfError(f"{self.path}: {where}.alphaMode must be OPAQUE, MASK or BLEND; got {_short(alpha_mode)}")
        alpha_cutoff = self.get(m, "alphaCutoff", "number", where, 0.5)
        if alpha_cutoff < 0:
            raise GltfError(f"{self.path}: {where}.alphaCutoff must be >= 0; got {alpha_cutoff}")
        pbr = self.get(m, "pbrMetallicRoughness", "dict", where, {})
        pwhere = where + ".pbrMetallicRoughness"
        ext = self.get(m, "extensions", "dict", where, {})
        strength = self.get(ext, "KHR_materials_emissive_strength", "dict", where + ".extensions", {})
        ior = self.get(ext, "KHR_materials_ior", "dict", where + ".extensions", {})
        transmission = self.get(ext, "KHR_materials_transmission", "dict", where + ".extensions", {})
        twhere = where + ".extensions.KHR_materials_transmission"
        transmission_factor = self.get(transmission, "transmissionFactor", "number", twhere, 0.0)
        if not 0.0 <= transmission_factor <= 1.0:
            raise GltfError(f"{self.path}: {twhere}.transmissionFactor must lie in [0, 1]; got {transmission_factor}")
        if "transmissionTexture" in transmission:
            self.get(transmission, "transmissionTexture", "dict", twhere)  # raises for a malformed one
            self._note("transmissionTexture (transmissionFactor is used alone)", label)
        specular_factor = self.specular_factor(ext, where, label)
        t = lambda v: torch.tensor(v, dtype=self.dtype)  # noqa: E731
        emissive = np.asarray(self.get(m, "emissiveFactor", "numbers", where, [0.0, 0.0, 0.0], length=3))
        emissive = emissive * self.get(strength, "emissiveStrength", "number", where + ".extensions."
                                       "KHR_materials_emissive_strength", 1.0)
        kw = dict(base_color_factor=t(self.get(pbr, "baseColorFactor", "numbers", pwhere, [1.0] * 4, length=4)),
                  metallic_factor=t(self.get(pbr, "metallicFactor", "number", pwhere, 1.0)),
                  roughness_factor=t(self.get(pbr, "roughnessFactor", "number", pwhere, 1.0)),
                  emissive_factor=t(emissive.tolist()),
                  ior=t(self.get(ior, "ior", "number", where + ".extensions.KHR_materials_ior", 1.5)),
                  transmission_factor=t(transmission_factor), specular_factor=t(specular_factor))
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
                self._note("TEXCOORD_1 and above (read with TEXCOORD_0)", f"{label} {slot}")
            self.get(info, "extensions", "dict", iwhere, {})  # KHR_texture_transform: named by _warn_ignored
            image, wrap = self.texture(self.get(info, "index", "index", iwhere))
            kw[slot] = image
            wraps.append(wrap)
            if key == "normalTexture":
                kw["normal_scale"] = t(self.get(info, "scale", "number", iwhere, 1.0))
            if key == "occlusionTexture":
                kw["occlusion_strength"] = t(self.get(info, "strength", "number", iwhere, 1.0))
        if len(set(wraps)) > 1:
            self._note("per-texture wrap modes (the first texture's is used)", f"{label} {'/'.join(wraps)}")
        volume = self.get(ext, "KHR_materials_volume", "dict", where + ".extensions", {})
        if volume:
            kw["interior"] = self.volume(volume, where + ".extensions.KHR_materials_volume", label)
        material = self._make(where, Material, **kw, wrap=wraps[0] if wraps else "repeat", alpha_mode=alpha_mode,
                              alpha_cutoff=alpha_cutoff)
        return material, self.get(m, "doubleSided", "bool", where, False)

    def specular_factor(self, ext: dict, where: str, label: str) -> float:
        """``KHR_materials_specular``'s ``specularFactor`` (1 without the extension). Its colour
        (``specularColorFactor`` other than white, ``specularColorTexture``) and ``specularTexture`` are checked
        and named in the file's warning: the BSDFs take the weight as one number per material and ``F0`` from
        ``ior`` alone (a per-channel ``F0`` would need the path tracer's material tables and kernels to change)."""
        swhere = where + ".extensions.KHR_materials_specular"
        specular = self.get(ext, "KHR_materials_specular", "dict", where + ".extensions", {})
        factor = self.get(specular, "specularFactor", "number", swhere, 1.0)
        if not 0.0 <= factor <= 1.0:
            raise GltfError(f"{self.path}: {swhere}.specularFactor must lie in [0, 1]; got {factor}")
        colour = self.get(specular, "specularColorFactor", "numbers", swhere, [1.0, 1.0, 1.0], length=3)
        if any(c < 0.0 for c in colour):
            raise GltfError(f"{self.path}: {swhere}.specularColorFactor must be >= 0; got {colour}")
        if any(c != 1.0 for c in colour):
            self._note("KHR_materials_specular.specularColorFactor (white is used: F0 from ior alone)", label)
        for key, instead in (("specularTexture", "specularFactor is used alone"),
                             ("specularColorTexture", "white is used: F0 from ior alone")):
            if key in specular:
                self.get(specular, key, "dict", swhere)  # raises for a malformed one
                self._note(f"KHR_materials_specular.{key} ({instead})", label)
        return factor

    def volume(self, volume: dict, where: str, label: str) -> Optional[HomogeneousMedium]:
        """The absorbing medium of a ``KHR_materials_volume`` object (None: thin-walled, or no attenuation)."""
        thickness = self.get(volume, "thicknessFactor", "number", where, 0.0)
        if thickness < 0:
            raise GltfError(f"{self.path}: {where}.thicknessFactor must be >= 0; got {thickness}")
        if "thicknessTexture" in volume:
            self.get(volume, "thicknessTexture", "dict", where)  # raises for a malformed one
            self._note("thicknessTexture", label)
        distance = volume.get("attenuationDistance", math.inf)
        if "attenuationDistance" in volume:
            distance = self.get(volume, "attenuationDistance", "number", where)
            if distance <= 0:
                raise GltfError(f"{self.path}: {where}.attenuationDistance must be > 0; got {distance}")
        color = self.get(volume, "attenuationColor", "numbers", where, [1.0, 1.0, 1.0], length=3)
        if not all(0.0 <= c <= 1.0 for c in color):
            raise GltfError(f"{self.path}: {where}.attenuationColor must lie in [0, 1]; got {color}")
        if thickness == 0 or not math.isfinite(distance) or all(c == 1.0 for c in color):
            return None
        sigma_a = -torch.log(torch.tensor(color, dtype=torch.float64).clamp_min(1e-6)) / distance
        return HomogeneousMedium(sigma_a.to(self.dtype), torch.zeros(3, dtype=self.dtype))

    def texture(self, index: int) -> Tuple[torch.Tensor, str]:
        tex = self._item("textures", index)
        where = f"textures[{index}]"
        sampler = self._item("samplers", self.get(tex, "sampler", "index", where)) if "sampler" in tex else {}
        swhere = f"samplers[{tex.get('sampler')}]"
        wrap = WRAP_MODES.get(self.get(sampler, "wrapS", "index", swhere, 10497), "repeat")
        wrap_t = WRAP_MODES.get(self.get(sampler, "wrapT", "index", swhere, 10497), "repeat")
        if wrap_t != wrap:
            self._note("wrapT different from wrapS (wrapS is used)", f"{swhere} {wrap}/{wrap_t}")
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
        """Decode ``images[index]``: 8-bit or 16-bit (kept) PNG, JPEG; sizes checked before decoding."""
        from .image import decode_image

        def reserve(width: int, height: int) -> None:  # the file's textures share one budget
            total = self._texels + width * height
            check_pixel_samples(total, f"{self.path}: the textures decoded up to images[{index}] ({width}x{height}) "
                                       f"hold {total} pixels")
            self._texels = total

        try:
            arr = decode_image(data, f"{self.path}: images[{index}]", reserve=reserve)
        except BudgetError as e:
            raise _GltfBudgetError(str(e)) from None
        except ValueError as e:
            raise GltfError(str(e)) from None
        return torch.from_numpy(arr).to(self.dtype)

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
        named = where + (f" ({_short(light['name'])})" if isinstance(light.get("name"), str) and light["name"] else "")
        t = lambda v: torch.tensor(v, dtype=self.dtype)  # noqa: E731
        color_values = self.get(light, "color", "numbers", where, [1.0, 1.0, 1.0], length=3)
        if min(color_values) < 0:
            raise GltfError(f"{self.path}: {named}: color must not be negative; got {color_values}")
        intensity_value = self.get(light, "intensity", "number", where, 1.0)
        if intensity_value < 0:
            raise GltfError(f"{self.path}: {named}: intensity must be >= 0; got {intensity_value}")
        color, intensity = t(color_values), t(intensity_value)
        light_range = self.get(light, "range", "number", where, None)
        if light_range is not None and light_range <= 0:
            raise GltfError(f"{self.path}: {named}: range must be > 0; got {light_range}")
        position = t(world[:3, 3].tolist())
        direction = -world[:3, 2] / max(np.linalg.norm(world[:3, 2]), 1e-12)
        kind = light.get("type")
        if kind == "point":
            return self._make(where, PointLight, position, intensity, color, range=light_range)
        if kind == "spot":
            spot = self.get(light, "spot", "dict", where, {})
            inner = self.get(spot, "innerConeAngle", "number", where + ".spot", 0.0)
            outer = self.get(spot, "outerConeAngle", "number", where + ".spot", math.pi / 4)
            if not (0.0 <= inner <= outer <= math.pi / 2 and outer > 0.0):
                raise GltfError(f"{self.path}: {named}: spot needs 0 <= innerConeAngle <= outerConeAngle <= pi/2 "
                                f"and outerConeAngle > 0; got innerConeAngle={inner}, outerConeAngle={outer}")
            return self._make(where, SpotLight, position, t(direction.tolist()), intensity, color, t(inner), t(outer),
                              range=light_range)
        if kind == "directional":
            return self._make(where, DirectionalLight, t(direction.tolist()), intensity, color)
        raise GltfError(f"{self.path}: {where} has type {_short(kind)}; expected point, spot or directional")


def read_container(path: Path) -> Tuple[object, Optional[bytes]]:
    """Read a .gltf or .glb file: its parsed JSON document (nesting bounded: no RecursionError) and, for a GLB,
    its binary chunk (else ``None``). Errors name the file."""
    from ._paths import parse_json

    try:
        raw = path.read_bytes()
    except OSError as e:
        raise GltfError(f"{path}: cannot read ({e.strerror})") from None
    glb_bin: Optional[bytes] = None
    if raw[:4] == b"glTF":
        raw, glb_bin = _split_glb(path, raw)
    return parse_json(raw, source=path, base=GltfError), glb_bin


def _split_glb(path: Path, raw: bytes) -> Tuple[bytes, Optional[bytes]]:
    if len(raw) < 20:
        raise GltfError(f"{path}: truncated GLB header")
    magic, version, length = struct.unpack_from("<III", raw, 0)
    if magic != GLB_MAGIC or version != 2:
        raise GltfError(f"{path}: GLB version {version}; only version 2 is supported")
    if length > len(raw):
        raise GltfError(f"{path}: GLB says {length} bytes but the file has {len(raw)} (truncated)")
    pos, json_chunk, glb_bin = 12, None, None
    while pos + 8 <= length:
        size, kind = struct.unpack_from("<II", raw, pos)
        if pos + 8 + size > length:
            raise GltfError(f"{path}: GLB chunk at byte {pos} runs past the end of the file")
        data = raw[pos + 8:pos + 8 + size]
        if kind == JSON_CHUNK and json_chunk is None:
            json_chunk = data
        elif kind == BIN_CHUNK and glb_bin is None:
            glb_bin = data
        pos += 8 + size
    if json_chunk is None:
        raise GltfError(f"{path}: GLB has no JSON chunk")
    return json_chunk, glb_bin


def _is_key(value, kind: type, table: dict) -> bool:
    """True if ``value`` has JSON type ``kind`` (booleans are not integers) and is a key of ``table``."""
    return isinstance(value, kind) and not isinstance(value, bool) and value in table


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _compose(local: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """World transforms ``[N, 4, 4]`` from local ones and each node's parent position (-1 for a root).

    Pointer jumping: every node keeps the product of the local transforms from below its current ancestor
    ``up[i]`` down to itself; each round multiplies in its ancestor's product and jumps to that ancestor's
    ancestor, so after ``ceil(log2(depth))`` rounds of batched 4x4 products every ``up`` is -1 and every product
    runs from the root. Example: a chain 0 <- 1 <- 2 of translations by 1 gives translations 1, 2, 3.
    """
    world = local.copy()
    up = parents.copy()
    active = np.flatnonzero(up >= 0)
    with np.errstate(all="ignore"):  # an overflow becomes Inf, which the caller reports
        while active.size:
            above = up[active]
            world[active] = np.matmul(world[above], world[active])  # both read before the write
            up[active] = up[above]
            active = active[up[active] >= 0]
    return world


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
