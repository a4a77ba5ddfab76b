"""glTF 2.0 writer: a :class:`Scene` as ``.glb`` (one binary container) or ``.gltf`` (JSON + ``.bin`` + PNGs).

What is written, so that :func:`lumigrad.io.read_gltf` and Blender read it back:

* meshes: one node per :class:`SceneMesh` (named after it, ``to_world`` as a column-major ``matrix``) with
  one mesh of one triangle primitive: ``POSITION`` (with ``min`` / ``max``), ``NORMAL`` (the mesh's normals,
  else area-weighted :func:`lumigrad.vertex_normals`), ``TANGENT`` and ``TEXCOORD_0`` when present, and
  ``uint16`` / ``uint32`` indices. glTF indexes every attribute with one index per corner, so a mesh whose
  ``uv_faces`` differ from its ``faces`` (OBJ style) is split into one vertex per distinct (vertex, uv) pair.
  A mirroring ``to_world`` (negative determinant) gets its faces written the other way round, as glTF flips
  them back.
* materials: ``pbrMetallicRoughness`` factors, the five texture slots as 8-bit PNG
  (``round(clamp(t, 0, 1) * 255)``; values are written as stored: base colour and emissive stay
  sRGB-encoded), one image per distinct texture tensor (a tensor used by two slots is written once), one
  sampler per wrap mode, ``alphaMode`` and ``alphaCutoff`` (when not the defaults), ``doubleSided``, normal ``scale``, occlusion ``strength``, ``emissiveFactor`` (above 1
  via ``KHR_materials_emissive_strength``), ``KHR_materials_ior`` when ``ior != 1.5`` and
  ``KHR_materials_transmission`` (``transmissionFactor``) when ``transmission_factor != 0``,
  ``KHR_materials_specular`` (``specularFactor``) when ``specular_factor != 1``, and an
  ``interior`` medium's absorption as ``KHR_materials_volume`` (``thicknessFactor`` 1, ``attenuationDistance``
  1, ``attenuationColor = exp(-sigma_a)``; its scattering, which glTF cannot hold, is dropped with a warning).
* cameras (``cameras=True``): perspective (``yfov`` from ``fy``, ``aspectRatio = W / H``) or orthographic
  (``xmag = W / (2 fx)``, ``ymag = H / (2 fy)``), the node holding the OpenGL camera-to-world pose.
* lights: point, spot and directional lights as ``KHR_lights_punctual``, the node at the light's position and
  rotated so that its local -z is the light's direction.

Not written (a warning names each): area, environment and SH lights; batched cameras; lens distortion, a
principal point off centre and non-square pixels (``fx != fy``); a material's ``exterior`` medium and the scene's
``medium`` (glTF has neither); the :class:`Film`; gradients (tensors are detached and written as float32).
"""

from __future__ import annotations

import io as _io
import json
import math
import os
import struct
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Tuple
from urllib.parse import quote

import numpy as np
import torch

from ..cameras.camera import Camera
from ..conventions import matrix_to_quaternion, world_to_cam_to_opengl_c2w
from ..mesh import vertex_normals
from ..scene.lights import DirectionalLight, PointLight, SpotLight
from ..scene.scene import Scene, SceneMesh
from ..shading.material import Material, mitsuba_model
from .gltf_format import BIN_CHUNK, GLB_MAGIC, JSON_CHUNK, WRAP_CODES

__all__ = ["write_gltf"]

_FLOAT, _USHORT, _UINT = 5126, 5123, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_TYPES = {1: "SCALAR", 2: "VEC2", 3: "VEC3", 4: "VEC4"}


def write_gltf(path: str | os.PathLike, scene: Scene, *, cameras: bool = True) -> Path:
    """Write ``scene`` as glTF 2.0: binary ``.glb``, or ``.gltf`` with ``<stem>.bin`` and PNGs beside it.

    Args:
        path: the file to write; its suffix (``.glb`` or ``.gltf``) picks the container. A ``.gltf`` file's
            buffer and images go into the same folder (``<stem>.bin``, ``<stem>_img<k>.png``), referenced by
            relative URIs.
        scene: the :class:`lumigrad.Scene`; meshes, materials, cameras and punctual lights are written.
        cameras: also write the scene's cameras.

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Raises:
        ValueError: ``path`` does not end in ``.glb`` or ``.gltf``.

    Warns:
        UserWarning: for every part of the scene glTF cannot hold (see the module docstring).

    Example: ``write_gltf("out.glb", read_gltf("WaterBottle.gltf"))`` writes a GLB that
    ``read_gltf`` reads back to the same meshes, materials and textures (to 8-bit rounding).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".glb", ".gltf"):
        raise ValueError(f"path must end in .glb or .gltf; got {str(path)!r}")
    if not isinstance(scene, Scene):
        raise TypeError(f"scene must be a lumigrad.Scene; got {type(scene).__name__}")
    return _Writer(path, binary=suffix == ".glb").write(scene, cameras)


class _Writer:
    def __init__(self, path: Path, binary: bool):
        self.path, self.binary = path, binary
        self.blob = bytearray()
        self.doc: Dict = {"asset": {"version": "2.0", "generator": "lumigrad"}, "scene": 0,
                          "scenes": [{"nodes": []}], "nodes": [], "meshes": [], "accessors": [],
                          "bufferViews": [], "buffers": []}
        self.extensions_used: set = set()
        self._images: Dict[int, Tuple[int, torch.Tensor]] = {}  # id(tensor) -> (image index, tensor kept alive)
        self._textures: Dict[Tuple[int, int], int] = {}  # (image, sampler) -> texture
        self._samplers: Dict[str, int] = {}
        self._materials: Dict[Tuple[int, bool], Tuple[int, Material]] = {}
        self._png_files: List[Tuple[str, bytes]] = []

    # ----------------------------------------------------------------------------------------- buffer
    def view(self, data: bytes, target: Optional[int] = None) -> int:
        self.blob.extend(b"\0" * (-len(self.blob) % 4))
        view = {"buffer": 0, "byteOffset": len(self.blob), "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        self.blob.extend(data)
        self.doc["bufferViews"].append(view)
        return len(self.doc["bufferViews"]) - 1

    def accessor(self, array: np.ndarray, target: int, *, bounds: bool = False) -> int:
        array = np.ascontiguousarray(array)
        width = 1 if array.ndim == 1 else array.shape[1]
        component = {np.dtype(np.float32): _FLOAT, np.dtype(np.uint16): _USHORT,
                     np.dtype(np.uint32): _UINT}[array.dtype]
        acc = {"bufferView": self.view(array.astype(array.dtype.newbyteorder("<")).tobytes(), target),
               "componentType": component, "count": int(array.shape[0]), "type": _TYPES[width]}
        if bounds:
            flat = array.reshape(array.shape[0], width)
            acc["min"] = [float(v) for v in flat.min(0)]
            acc["max"] = [float(v) for v in flat.max(0)]
        self.doc["accessors"].append(acc)
        return len(self.doc["accessors"]) - 1

    def node(self, node: dict) -> int:
        self.doc["nodes"].append(node)
        index = len(self.doc["nodes"]) - 1
        self.doc["scenes"][0]["nodes"].append(index)
        return index

    # ------------------------------------------------------------------------------------------ scene
    def write(self, scene: Scene, cameras: bool) -> Path:
        if scene.medium is not None:
            warnings.warn("glTF writer: the scene has a medium (Scene.medium) around everything, which glTF cannot "
                          "hold; written without")
        for name, mesh in scene.meshes.items():
            self.mesh(name, mesh)
        if cameras:
            for name, cam in scene.cameras.items():
                self.camera(name, cam)
        for name, light in scene.lights.items():
            self.light(name, light)
        return self.save()

    def mesh(self, name: str, mesh: SceneMesh) -> None:
        verts = _np(mesh.verts)
        faces = mesh.faces.detach().cpu().long()
        normals = (mesh.normals.detach() if mesh.normals is not None
                   else vertex_normals(mesh.verts.detach(), mesh.faces.detach().long()))
        normals = _np(normals)
        tangents = _np(mesh.tangents) if mesh.tangents is not None else None
        uv = None
        if mesh.uv is not None:
            uv = _np(mesh.uv)
            uv_faces = mesh.uv_faces.detach().cpu().long()
            if uv_faces is not mesh.faces and not torch.equal(uv_faces, faces):
                # one glTF vertex per distinct (position, uv) corner pair
                pairs = torch.stack([faces.reshape(-1), uv_faces.reshape(-1)], -1).numpy()
                unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
                verts, uv, normals = verts[unique[:, 0]], uv[unique[:, 1]], normals[unique[:, 0]]
                tangents = tangents[unique[:, 0]] if tangents is not None else None
                faces = torch.from_numpy(inverse.reshape(-1, 3))
        elif mesh.material.has_textures():
            warnings.warn(f"glTF writer: mesh {name!r} has a textured material but no uv; glTF readers will ignore "
                          "its textures")
        to_world = mesh.to_world.detach().cpu().double()
        faces = faces.numpy()
        if torch.linalg.det(to_world[:3, :3]) < 0:  # readers flip the winding of mirrored nodes back
            faces = faces[:, [0, 2, 1]]
        V = verts.shape[0]
        attributes = {"POSITION": self.accessor(verts, _ARRAY_BUFFER, bounds=True),
                      "NORMAL": self.accessor(normals, _ARRAY_BUFFER)}
        if tangents is not None:
            attributes["TANGENT"] = self.accessor(tangents, _ARRAY_BUFFER)
        if uv is not None:
            attributes["TEXCOORD_0"] = self.accessor(uv, _ARRAY_BUFFER)
        index_type = np.uint16 if V < 65535 else np.uint32  # the largest value of the type is reserved
        primitive = {"attributes": attributes, "indices": self.accessor(faces.reshape(-1).astype(index_type),
                                                                        _ELEMENT_ARRAY_BUFFER),
                     "mode": 4, "material": self.material(mesh.material, bool(mesh.double_sided))}
        self.doc["meshes"].append({"name": name, "primitives": [primitive]})
        node = {"name": name, "mesh": len(self.doc["meshes"]) - 1}
        if not torch.equal(to_world, torch.eye(4, dtype=to_world.dtype)):
            node["matrix"] = _column_major(mesh.to_world.detach().cpu().float())
        self.node(node)

    # -------------------------------------------------------------------------------------- materials
    def material(self, material: Material, double_sided: bool) -> int:
        key = (id(material), double_sided)
        if key in self._materials:
            return self._materials[key][0]
        m = material
        pbr = {"baseColorFactor": _floats(m.base_color_factor, 4), "metallicFactor": _float(m.metallic_factor),
               "roughnessFactor": _float(m.roughness_factor)}
        out: Dict = {"pbrMetallicRoughness": pbr}
        if m.base_color_texture is not None:
            pbr["baseColorTexture"] = {"index": self.texture(m.base_color_texture, m.wrap)}
        if m.metallic_roughness_texture is not None:
            pbr["metallicRoughnessTexture"] = {"index": self.texture(m.metallic_roughness_texture, m.wrap)}
        if m.normal_texture is not None:
            out["normalTexture"] = {"index": self.texture(m.normal_texture, m.wrap), "scale": _float(m.normal_scale)}
        if m.occlusion_texture is not None:
            out["occlusionTexture"] = {"index": self.texture(m.occlusion_texture, m.wrap),
                                       "strength": _float(m.occlusion_strength)}
        if m.emissive_texture is not None:
            out["emissiveTexture"] = {"index": self.texture(m.emissive_texture, m.wrap)}
        emissive = np.asarray(_floats(m.emissive_factor, 3), dtype=np.float64)
        extensions = {}
        strength = float(emissive.max()) if emissive.size else 0.0
        if strength > 1.0:
            extensions["KHR_materials_emissive_strength"] = {"emissiveStrength": strength}
            emissive = emissive / strength
        if emissive.any():
            out["emissiveFactor"] = [float(v) for v in emissive]
        ior = _float(m.ior)
        if ior != 1.5:
            extensions["KHR_materials_ior"] = {"ior": ior}
        transmission = _float(m.transmission_factor)
        if transmission != 0.0:
            extensions["KHR_materials_transmission"] = {"transmissionFactor": transmission}
        specular = _float(m.specular_factor)
        if specular != 1.0:
            extensions["KHR_materials_specular"] = {"specularFactor": specular}
        where = f"materials[{len(self.doc.get('materials', []))}]"
        if m.interior is not None:
            extensions.update(_volume(m.interior, where))
        if m.exterior is not None:
            warnings.warn(f"glTF writer: {where} has an exterior medium (Material.exterior), which glTF cannot "
                          "hold; written without")
        if m.thin_dielectric and transmission != 0.0:
            warnings.warn(f"glTF writer: {where} is a thin dielectric sheet (Material.thin_dielectric), which glTF "
                          "cannot mark; written as plain transmission, read back as a solid's boundary")
        model = mitsuba_model(m)
        if model is not None:
            warnings.warn(f"glTF writer: {where} is Mitsuba's {model} (Material.{model}"
                          f"{'_eta' if model == 'conductor' else ''}), which glTF cannot hold; written as the glTF "
                          "model of the same factors")
        if m.roughness_aspect is not None:
            warnings.warn(f"glTF writer: {where} has an anisotropic lobe (Material.roughness_aspect), which glTF's "
                          "core model cannot hold; written isotropic, of the mean width")
        if m.delta_specular:
            warnings.warn(f"glTF writer: {where} has Dirac specular lobes (Material.delta_specular), which glTF "
                          "cannot mark; written as lobes of roughness 0 (delta lights' glints show again)")
        if m.mitsuba_normal_map and m.normal_texture is not None:
            warnings.warn(f"glTF writer: {where} has Mitsuba's normal map shadowing (Material.mitsuba_normal_map), "
                          "which glTF cannot hold; written as a glTF normal map")
        if m.microfacet != "ggx":
            warnings.warn(f"glTF writer: {where} has the {m.microfacet!r} microfacet distribution; glTF's is GGX, "
                          "so it is written as GGX of the same roughness")
        if extensions:
            out["extensions"] = extensions
            self.extensions_used.update(extensions)
        if m.alpha_mode != "OPAQUE":
            out["alphaMode"] = m.alpha_mode
        if m.alpha_mode == "MASK" and m.alpha_cutoff != 0.5:
            out["alphaCutoff"] = m.alpha_cutoff
        if double_sided:
            out["doubleSided"] = True
        self.doc.setdefault("materials", []).append(out)
        index = len(self.doc["materials"]) - 1
        self._materials[key] = (index, material)
        return index

    def texture(self, tensor: torch.Tensor, wrap: str) -> int:
        image = self.image(tensor)
        if wrap not in self._samplers:
            code = WRAP_CODES[wrap]
            self.doc.setdefault("samplers", []).append({"magFilter": 9729, "minFilter": 9987, "wrapS": code,
                                                        "wrapT": code})
            self._samplers[wrap] = len(self.doc["samplers"]) - 1
        key = (image, self._samplers[wrap])
        if key not in self._textures:
            self.doc.setdefault("textures", []).append({"sampler": key[1], "source": image})
            self._textures[key] = len(self.doc["textures"]) - 1
        return self._textures[key]

    def image(self, tensor: torch.Tensor) -> int:
        if id(tensor) in self._images:
            return self._images[id(tensor)][0]
        images = self.doc.setdefault("images", [])
        index = len(images)
        data = _png(tensor, f"images[{index}]")
        if self.binary:
            images.append({"bufferView": self.view(data), "mimeType": "image/png"})
        else:
            name = f"{self.path.stem}_img{index}.png"
            self._png_files.append((name, data))
            images.append({"uri": quote(name), "mimeType": "image/png"})
        self._images[id(tensor)] = (index, tensor)
        return index

    # ------------------------------------------------------------------------------ cameras and lights
    def camera(self, name: str, cam: Camera) -> None:
        if cam.batch_shape != ():
            warnings.warn(f"glTF writer: camera {name!r} is a batch of {tuple(cam.batch_shape)} cameras; glTF holds "
                          "one camera per node; skipped")
            return
        K = cam.K.detach().cpu().double()
        fx, fy, cx, cy = (float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]))
        W, H = cam.width, cam.height
        if cam.distortion is not None:
            warnings.warn(f"glTF writer: camera {name!r} has lens distortion, which glTF cannot hold; written without")
        if cam.thin_lens:
            warnings.warn(f"glTF writer: camera {name!r} has a thin lens (aperture_radius, focus_distance), which glTF "
                          "cannot hold; written as its pinhole")
        if abs(cx - 0.5 * W) > 1e-3 or abs(cy - 0.5 * H) > 1e-3:
            warnings.warn(f"glTF writer: camera {name!r} has its principal point ({cx:g}, {cy:g}) off the image "
                          f"centre ({0.5 * W:g}, {0.5 * H:g}); glTF cameras are centred, written centred")
        if cam.projection == "orthographic":
            out = {"type": "orthographic", "orthographic": {"xmag": W / (2 * fx), "ymag": H / (2 * fy),
                                                            "znear": cam.near, "zfar": cam.far}}
        else:
            if abs(fx - fy) > 1e-6 * abs(fy):
                warnings.warn(f"glTF writer: camera {name!r} has fx = {fx:g} != fy = {fy:g}; glTF pixels are square, "
                              "written with fy")
            perspective = {"yfov": 2 * math.atan(0.5 * H / fy), "aspectRatio": W / H, "znear": cam.near}
            if math.isfinite(cam.far):
                perspective["zfar"] = cam.far
            out = {"type": "perspective", "perspective": perspective}
        out["name"] = name
        self.doc.setdefault("cameras", []).append(out)
        c2w = world_to_cam_to_opengl_c2w(cam.world_to_cam.detach().cpu().double())
        self.node({"name": name, "camera": len(self.doc["cameras"]) - 1, "matrix": _column_major(c2w)})

    def light(self, name: str, light) -> None:
        if isinstance(light, PointLight):
            out = {"type": "point", "intensity": _float(light.intensity)}
        elif isinstance(light, SpotLight):
            if light.falloff != "gltf":
                warnings.warn(f"glTF writer: spot light {name!r} has the {light.falloff!r} falloff; KHR_lights_punctual "
                              "holds glTF's, so its cone's edge is written with that one")
            out = {"type": "spot", "intensity": _float(light.intensity),
                   "spot": {"innerConeAngle": _float(light.inner_angle), "outerConeAngle": _float(light.outer_angle)}}
        elif isinstance(light, DirectionalLight):
            out = {"type": "directional", "intensity": _float(light.irradiance)}
        else:
            warnings.warn(f"glTF writer: light {name!r} is a {type(light).__name__}, which KHR_lights_punctual cannot "
                          "hold (point, spot and directional only); skipped")
            return
        out = {"name": name, "color": _floats(light.color, 3), **out}
        if getattr(light, "range", None) is not None:
            out["range"] = float(light.range)
        lights = self.doc.setdefault("extensions", {}).setdefault("KHR_lights_punctual", {"lights": []})["lights"]
        lights.append(out)
        self.extensions_used.add("KHR_lights_punctual")
        node = {"name": name, "extensions": {"KHR_lights_punctual": {"light": len(lights) - 1}}}
        if not isinstance(light, DirectionalLight):
            node["translation"] = _floats(light.position, 3)
        if not isinstance(light, PointLight):
            node["rotation"] = _rotation_looking_along(_np(light.direction).astype(np.float64).reshape(3))
        self.node(node)

    # ------------------------------------------------------------------------------------------- save
    def save(self) -> Path:
        if self.extensions_used:
            self.doc["extensionsUsed"] = sorted(self.extensions_used)
        self.blob.extend(b"\0" * (-len(self.blob) % 4))
        doc = {k: v for k, v in self.doc.items() if v != [] or k == "scenes"}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.blob:
            doc["buffers"] = [{"byteLength": len(self.blob)}]
            if not self.binary:
                bin_name = f"{self.path.stem}.bin"
                doc["buffers"][0]["uri"] = quote(bin_name)
                (self.path.parent / bin_name).write_bytes(bytes(self.blob))
        else:
            doc.pop("buffers", None)
            doc.pop("bufferViews", None)
        if self.binary:
            text = json.dumps(doc, separators=(",", ":")).encode("utf-8")
            text += b" " * (-len(text) % 4)
            chunks = struct.pack("<II", len(text), JSON_CHUNK) + text
            if self.blob:
                chunks += struct.pack("<II", len(self.blob), BIN_CHUNK) + bytes(self.blob)
            self.path.write_bytes(struct.pack("<III", GLB_MAGIC, 2, 12 + len(chunks)) + chunks)
        else:
            for name, data in self._png_files:
                (self.path.parent / name).write_bytes(data)
            self.path.write_text(json.dumps(doc, indent=1), encoding="utf-8")
        return self.path


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float32).numpy()


def _float(t) -> float:
    return float(torch.as_tensor(t).detach().cpu().to(torch.float32).reshape(-1)[0])


def _floats(t, n: int) -> List[float]:
    return [float(v) for v in torch.as_tensor(t).detach().cpu().to(torch.float32).reshape(-1)[:n]]


def _column_major(T: torch.Tensor) -> List[float]:
    return [float(v) for v in T.to(torch.float32).T.reshape(-1)]


def _rotation_looking_along(direction: np.ndarray) -> List[float]:
    """glTF ``rotation`` (xyzw) turning the local -z axis onto ``direction``."""
    z = -direction / max(np.linalg.norm(direction), 1e-12)
    up = np.array([0.0, 1.0, 0.0]) if abs(z[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x = np.cross(up, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    w, qx, qy, qz = matrix_to_quaternion(torch.from_numpy(np.stack([x, y, z], -1))).tolist()
    return [qx, qy, qz, w]


def _png(tensor: torch.Tensor, what: str) -> bytes:
    from PIL import Image

    t = tensor.detach().cpu().to(torch.float32)
    if t.dim() == 2:
        t = t[..., None]
    if t.dim() != 3 or t.shape[-1] < 1:
        raise ValueError(f"glTF writer: {what} must be a texture [H, W, C]; got shape {tuple(tensor.shape)}")
    if t.shape[-1] > 4:
        warnings.warn(f"glTF writer: {what} has {t.shape[-1]} channels; PNG holds 4, the rest are dropped")
        t = t[..., :4]
    arr = (t.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    buf = _io.BytesIO()
    Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _volume(medium, where: str) -> dict:
    """``{"KHR_materials_volume": ...}`` of an interior medium's absorption (scattering dropped, with a warning)."""
    sigma_a = np.broadcast_to(medium.sigma_a.detach().double().cpu().numpy().reshape(-1), (3,))
    if float(medium.sigma_s.detach().abs().max()) > 0:
        warnings.warn(f"glTF writer: {where} has a scattering interior medium; glTF holds absorption only "
                      "(KHR_materials_volume): its sigma_s and g are not written")
    color = np.exp(-sigma_a)
    return {"KHR_materials_volume": {"thicknessFactor": 1.0, "attenuationDistance": 1.0,
                                     "attenuationColor": [float(c) for c in color]}}
