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

Not read: animations, skins, morph targets (later issues), ``TEXCOORD_1`` (textures using it are
read with ``TEXCOORD_0`` and a warning), ``KHR_texture_transform``, per-texture samplers (one wrap mode
per material: the first texture's), and alpha blending (rendered opaque).
"""

from __future__ import annotations

import base64
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
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise GltfError(f"{path}: not glTF JSON ({e})") from None
        version = str(self.doc.get("asset", {}).get("version", ""))
        if not version.startswith("2."):
            raise GltfError(f"{path}: asset.version is {version!r}; only glTF 2.x is supported")
        supported = {"KHR_lights_punctual", "KHR_materials_ior", "KHR_materials_emissive_strength"}
        missing = set(self.doc.get("extensionsRequired", [])) - supported
        if missing:
            raise GltfError(f"{path}: requires unsupported extensions {sorted(missing)}")
        self._buffers: Dict[int, bytes] = {}
        self._images: Dict[int, torch.Tensor] = {}
        self._names: Dict[str, int] = {}

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
        items = self.doc.get(kind, [])
        if not isinstance(index, int) or not 0 <= index < len(items):
            raise GltfError(f"{self.path}: {kind}[{index}] does not exist ({len(items)} {kind})")
        return items[index]

    def _uri_bytes(self, uri: str, what: str, expected: Optional[int] = None) -> bytes:
        if uri.startswith("data:"):
            header, _, payload = uri.partition(",")
            if not header.endswith(";base64"):
                raise GltfError(f"{self.path}: {what} has a data URI that is not base64")
            return base64.b64decode(payload)
        from urllib.parse import unquote, urlparse

        if urlparse(uri).scheme not in ("", "file") or unquote(uri).startswith(("/", "\\")):
            raise GltfError(f"{self.path}: {what} has URI {uri!r}; only relative paths inside the file's folder "
                            "(or data URIs) are read")
        folder = self.path.parent.resolve()
        file = (folder / unquote(uri)).resolve()
        if folder not in file.parents:
            raise GltfError(f"{self.path}: {what} refers to {uri!r}, outside the file's folder; refused")
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
            if "uri" in b:
                data = self._uri_bytes(b["uri"], f"buffers[{index}]", expected=b.get("byteLength"))
            elif self.glb_bin is not None:
                data = self.glb_bin
            else:
                raise GltfError(f"{self.path}: buffers[{index}] has no uri and there is no GLB binary chunk")
            if len(data) < b.get("byteLength", 0):
                raise GltfError(f"{self.path}: buffers[{index}] has {len(data)} bytes, byteLength says "
                                f"{b['byteLength']} (truncated?)")
            self._buffers[index] = data
        return self._buffers[index]

    def view_bytes(self, index: int) -> Tuple[bytes, int, Optional[int]]:
        view = self._item("bufferViews", index)
        data = self.buffer(view.get("buffer"))
        start, length = view.get("byteOffset", 0), view.get("byteLength", 0)
        if start + length > len(data):
            raise GltfError(f"{self.path}: bufferViews[{index}] runs past the end of its buffer")
        return data, start, view.get("byteStride")

    # --------------------------------------------------------------------------------------- accessors
    def accessor(self, index: int) -> np.ndarray:
        """``[count, width]`` float64 (normalized integers mapped to [0, 1] / [-1, 1]) or integer array."""
        acc = self._item("accessors", index)
        where = f"accessors[{index}]"
        if acc.get("componentType") not in _COMPONENTS or acc.get("type") not in _WIDTH:
            raise GltfError(f"{self.path}: {where} has componentType {acc.get('componentType')} / type "
                            f"{acc.get('type')!r}, which glTF 2.0 does not define")
        np_type, norm = _COMPONENTS[acc["componentType"]]
        width, count = _WIDTH[acc["type"]], int(acc.get("count", 0))
        if "bufferView" in acc:
            out = self._read_elements(acc["bufferView"], acc.get("byteOffset", 0), np_type, width, count, where)
        else:
            out = np.zeros((count, width), dtype=np_type)
        if "sparse" in acc:
            out = out.copy()
            sp = acc["sparse"]
            n = int(sp["count"])
            idx_type = _COMPONENTS.get(sp["indices"].get("componentType"), (None,))[0]
            if idx_type is None:
                raise GltfError(f"{self.path}: {where}.sparse.indices has an unknown componentType")
            idx = self._read_elements(sp["indices"]["bufferView"], sp["indices"].get("byteOffset", 0), idx_type,
                                      1, n, where + ".sparse.indices")[:, 0].astype(np.int64)
            if n and (idx.min() < 0 or idx.max() >= count):
                raise GltfError(f"{self.path}: {where}.sparse.indices out of range [0, {count})")
            out[idx] = self._read_elements(sp["values"]["bufferView"], sp["values"].get("byteOffset", 0), np_type,
                                           width, n, where + ".sparse.values")
        if acc.get("normalized") and norm is not None:
            out = np.maximum(out.astype(np.float64) / norm, -1.0)
        return out

    def _read_elements(self, view_index, offset, np_type, width, count, where) -> np.ndarray:
        data, start, stride = self.view_bytes(view_index)
        item = np.dtype(np_type).itemsize
        elem = item * width
        stride = stride or elem
        view = self._item("bufferViews", view_index)
        needed = offset + (stride * (count - 1) + elem if count else 0)
        if needed > view.get("byteLength", 0):
            raise GltfError(f"{self.path}: {where} reads {needed} bytes from bufferViews[{view_index}], which has "
                            f"{view.get('byteLength', 0)}")
        if stride == elem:
            arr = np.frombuffer(data, dtype=np_type, count=count * width, offset=start + offset)
            return arr.reshape(count, width)
        rows = np.lib.stride_tricks.as_strided(
            np.frombuffer(data, dtype=np.uint8, offset=start + offset, count=needed - offset),
            shape=(count, elem), strides=(stride, 1))
        return np.ascontiguousarray(rows).view(np_type).reshape(count, width)

    def tensor(self, index: int) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.accessor(index), dtype=np.float64)).to(self.dtype)

    # ------------------------------------------------------------------------------------- scene graph
    def scene(self, which: Optional[int], image_height: int) -> Scene:
        scenes = self.doc.get("scenes", [])
        which = which if which is not None else self.doc.get("scene", 0)
        roots = self._item("scenes", which).get("nodes", []) if scenes else list(range(len(self.doc.get("nodes", []))))
        out = Scene()
        stack = [(r, np.eye(4), ()) for r in reversed(roots)]
        while stack:
            index, parent, path = stack.pop()
            if index in path:
                raise GltfError(f"{self.path}: nodes[{index}] is its own ancestor (a cycle in the node graph)")
            node = self._item("nodes", index)
            world = parent @ _local_matrix(node)
            name = node.get("name") or f"node{index}"
            if "mesh" in node:
                for k, mesh in enumerate(self.mesh(node["mesh"], world)):
                    out.add_mesh(self._unique(name if k == 0 else f"{name}-{k}"), mesh)
            if "camera" in node:
                out.add_camera(self._unique(node.get("name") or f"camera{node['camera']}"),
                               self.camera(node["camera"], world, image_height))
            light = node.get("extensions", {}).get("KHR_lights_punctual", {}).get("light")
            if light is not None:
                out.add_light(self._unique(name), self.light(light, world))
            stack.extend((c, world, path + (index,)) for c in reversed(node.get("children", [])))
        return out

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
        for p, prim in enumerate(mesh.get("primitives", [])):
            where = f"meshes[{index}].primitives[{p}]"
            attrs = prim.get("attributes", {})
            if "POSITION" not in attrs:
                raise GltfError(f"{self.path}: {where} has no POSITION")
            verts = self.tensor(attrs["POSITION"])
            V = verts.shape[0]
            idx = (self.accessor(prim["indices"])[:, 0].astype(np.int64) if "indices" in prim
                   else np.arange(V, dtype=np.int64))
            faces = _triangles(idx, prim.get("mode", 4))
            if faces is None:
                warnings.warn(f"{self.path}: {where} has mode {prim.get('mode')} (points or lines); skipped")
                continue
            if faces.size and (faces.min() < 0 or faces.max() >= V):
                raise GltfError(f"{self.path}: {where} has indices outside [0, {V})")
            if flip:
                faces = faces[:, [0, 2, 1]]
            if faces.shape[0] == 0:
                continue
            uv = self.tensor(attrs["TEXCOORD_0"]) if "TEXCOORD_0" in attrs else None
            normals = self.tensor(attrs["NORMAL"]) if "NORMAL" in attrs else None
            tangents = self.tensor(attrs["TANGENT"]) if "TANGENT" in attrs else None
            material, double_sided = (self.material(prim["material"]) if "material" in prim
                                      else (Material(base_color_factor=torch.ones(4, dtype=self.dtype)), False))
            for name, t, width in (("TEXCOORD_0", uv, 2), ("NORMAL", normals, 3), ("TANGENT", tangents, 4)):
                if t is not None and t.shape != (V, width):
                    raise GltfError(f"{self.path}: {where}.{name} has shape {tuple(t.shape)}; expected ({V}, {width})")
            if uv is None and material.has_textures():
                warnings.warn(f"{self.path}: {where} has a textured material but no TEXCOORD_0; textures ignored")
                for s in TEXTURE_SLOTS:
                    setattr(material, s, None)
            out.append(SceneMesh(verts, torch.from_numpy(faces), material, uv=uv, normals=normals, tangents=tangents,
                                 to_world=to_world.clone(), double_sided=double_sided))
        return out

    def material(self, index: int) -> Tuple[Material, bool]:
        m = self._item("materials", index)
        pbr = m.get("pbrMetallicRoughness", {})
        ext = m.get("extensions", {})
        t = lambda v: torch.tensor(v, dtype=self.dtype)  # noqa: E731
        emissive = np.asarray(m.get("emissiveFactor", [0.0, 0.0, 0.0]), dtype=np.float64)
        emissive = emissive * ext.get("KHR_materials_emissive_strength", {}).get("emissiveStrength", 1.0)
        kw = dict(base_color_factor=t(pbr.get("baseColorFactor", [1.0, 1.0, 1.0, 1.0])),
                  metallic_factor=t(pbr.get("metallicFactor", 1.0)), roughness_factor=t(pbr.get("roughnessFactor", 1.0)),
                  emissive_factor=t(emissive.tolist()), ior=t(ext.get("KHR_materials_ior", {}).get("ior", 1.5)))
        wraps = []
        for slot, info in (("base_color_texture", pbr.get("baseColorTexture")),
                           ("metallic_roughness_texture", pbr.get("metallicRoughnessTexture")),
                           ("normal_texture", m.get("normalTexture")), ("occlusion_texture", m.get("occlusionTexture")),
                           ("emissive_texture", m.get("emissiveTexture"))):
            if info is None:
                continue
            if info.get("texCoord", 0) != 0:
                warnings.warn(f"{self.path}: materials[{index}] {slot} uses TEXCOORD_{info['texCoord']}; read with "
                              "TEXCOORD_0")
            if "KHR_texture_transform" in info.get("extensions", {}):
                warnings.warn(f"{self.path}: materials[{index}] {slot} has KHR_texture_transform; ignored")
            image, wrap = self.texture(info.get("index"))
            kw[slot] = image
            wraps.append(wrap)
        if "normalTexture" in m:
            kw["normal_scale"] = t(m["normalTexture"].get("scale", 1.0))
        if "occlusionTexture" in m:
            kw["occlusion_strength"] = t(m["occlusionTexture"].get("strength", 1.0))
        material = Material(**kw, wrap=wraps[0] if wraps else "repeat")
        return material, bool(m.get("doubleSided", False))

    def texture(self, index: int) -> Tuple[torch.Tensor, str]:
        tex = self._item("textures", index)
        sampler = self._item("samplers", tex["sampler"]) if "sampler" in tex else {}
        wrap = _WRAP.get(sampler.get("wrapS", 10497), "repeat")
        source = tex.get("source")
        if source is None:
            raise GltfError(f"{self.path}: textures[{index}] has no source image (extension-only images unsupported)")
        if source not in self._images:
            img = self._item("images", source)
            if "uri" in img:
                data = self._uri_bytes(img["uri"], f"images[{source}]")
            elif "bufferView" in img:
                buf, start, _ = self.view_bytes(img["bufferView"])
                data = buf[start:start + self._item("bufferViews", img["bufferView"])["byteLength"]]
            else:
                raise GltfError(f"{self.path}: images[{source}] has neither uri nor bufferView")
            self._images[source] = self._decode_image(data, source)
        return self._images[source], wrap

    def _decode_image(self, data: bytes, index: int) -> torch.Tensor:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(_io.BytesIO(data)) as im:
                im = im.convert("RGBA" if im.mode in ("RGBA", "LA", "P", "PA") else "RGB")
                arr = np.asarray(im, dtype=np.float32) / 255.0
        except (UnidentifiedImageError, OSError) as e:
            raise GltfError(f"{self.path}: images[{index}] cannot be decoded ({e})") from None
        return torch.from_numpy(arr.copy()).to(self.dtype)

    def camera(self, index: int, world: np.ndarray, image_height: int) -> Camera:
        cam = self._item("cameras", index)
        c2w = world.copy()
        c2w[:3, :3] /= np.linalg.norm(c2w[:3, :3], axis=0, keepdims=True)  # glTF: camera nodes are not scaled
        w2c = opengl_c2w_to_world_to_cam(torch.from_numpy(c2w)).to(self.dtype)
        kind = cam.get("type")
        if kind == "perspective":
            p = cam.get("perspective", {})
            aspect = p.get("aspectRatio", 1.0)
            width = max(1, round(image_height * aspect))
            near, far = p.get("znear", 0.01), p.get("zfar", 1e4)
            return Camera.from_fov(p["yfov"], width, image_height, w2c, near=near, far=far)
        if kind == "orthographic":
            o = cam.get("orthographic", {})
            width = max(1, round(image_height * o["xmag"] / o["ymag"]))
            K = projection.K_orthographic(2 * o["ymag"], width, image_height, dtype=self.dtype)
            K[0, 0] = width / (2 * o["xmag"])
            return Camera(K, w2c, width, image_height, near=max(o.get("znear", 0.0), 1e-6), far=o.get("zfar", 1e4),
                          projection="orthographic")
        raise GltfError(f"{self.path}: cameras[{index}] has type {kind!r}; expected perspective or orthographic")

    def light(self, index: int, world: np.ndarray):
        lights = self.doc.get("extensions", {}).get("KHR_lights_punctual", {}).get("lights", [])
        if not 0 <= index < len(lights):
            raise GltfError(f"{self.path}: KHR_lights_punctual light {index} does not exist")
        light = lights[index]
        t = lambda v: torch.tensor(v, dtype=self.dtype)  # noqa: E731
        color, intensity = t(light.get("color", [1.0, 1.0, 1.0])), t(float(light.get("intensity", 1.0)))
        position = t(world[:3, 3].tolist())
        direction = -world[:3, 2] / max(np.linalg.norm(world[:3, 2]), 1e-12)
        kind = light.get("type")
        if kind == "point":
            return PointLight(position, intensity, color, range=light.get("range"))
        if kind == "spot":
            spot = light.get("spot", {})
            return SpotLight(position, t(direction.tolist()), intensity, color, t(spot.get("innerConeAngle", 0.0)),
                             t(spot.get("outerConeAngle", math.pi / 4)), range=light.get("range"))
        if kind == "directional":
            return DirectionalLight(t(direction.tolist()), intensity, color)
        raise GltfError(f"{self.path}: light {index} has type {kind!r}; expected point, spot or directional")


def _local_matrix(node: dict) -> np.ndarray:
    if "matrix" in node:
        return np.asarray(node["matrix"], dtype=np.float64).reshape(4, 4).T  # glTF stores column-major
    T = np.eye(4)
    x, y, z, w = node.get("rotation", [0.0, 0.0, 0.0, 1.0])  # glTF quaternions are xyzw; ours are wxyz
    R = quaternion_to_matrix(torch.tensor([w, x, y, z], dtype=torch.float64)).numpy()
    T[:3, :3] = R * np.asarray(node.get("scale", [1.0, 1.0, 1.0]))[None, :]
    T[:3, 3] = node.get("translation", [0.0, 0.0, 0.0])
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
