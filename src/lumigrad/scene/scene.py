"""``Scene``: named meshes with materials, lights, cameras and a film, with Mitsuba-style parameter traversal.

The scene owns no maths: :func:`lumigrad.render` reads its tensors and calls the functional ops.
``scene.parameters()`` returns every tensor under a dotted name (``"meshes.bottle.material.roughness_factor"``,
``"lights.key.position"``, ``"cameras.main.K"``, ``"film.exposure"``); ``scene.trainable("meshes.*.material.*")``
makes the matching ones require gradients in one call and returns them for an optimiser, and
``scene[name] = tensor`` swaps one in (for example a re-parameterised tensor computed each step).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field, fields
from typing import Dict, Iterable, Optional, Union, get_args

import torch

from .._checks import check_choice, check_indices, check_mesh, check_number, check_tensor
from ..cameras.camera import Camera
from ..mesh import Mesh
from ..shading.material import Material
from .lights import Light

__all__ = ["Film", "Scene", "SceneMesh"]

_NAME_OK = re.compile(r"^[A-Za-z0-9_\-]+$")


@dataclass
class SceneMesh:
    """One triangle mesh of a scene, in its local frame, with its material.

    Attributes:
        verts: ``[V, 3]`` local positions; ``faces``: ``[F, 3]`` counter-clockwise front faces.
        material: a :class:`lumigrad.shading.Material`.
        uv: ``[T, 2]`` texture coordinates (top-left origin); ``uv_faces``: ``[F, 3]`` indices into ``uv``
            (default ``faces``: per-vertex texture coordinates, as in glTF).
        normals: ``[V, 3]`` shading normals per vertex (indexed by ``faces``); area-weighted when ``None``.
        tangents: ``[V, 4]`` glTF tangents (xyz, handedness w); derived from ``uv`` when ``None`` and the
            material has a normal map.
        to_world: ``[4, 4]`` local-to-world transform (identity by default); differentiable.
        double_sided: shade back faces with the flipped normal (glTF ``doubleSided``); single-sided meshes
            are culled from behind when every mesh of the scene is.
    """

    verts: torch.Tensor
    faces: torch.Tensor
    material: Material = None
    uv: Optional[torch.Tensor] = None
    uv_faces: Optional[torch.Tensor] = None
    normals: Optional[torch.Tensor] = None
    tangents: Optional[torch.Tensor] = None
    to_world: Optional[torch.Tensor] = None
    double_sided: bool = False

    def __post_init__(self):
        check_mesh(self.verts, self.faces, what="a SceneMesh")
        if self.material is None:
            self.material = Material(base_color_factor=torch.ones(4, dtype=self.verts.dtype))
        if self.uv is not None:
            check_tensor(self.uv, "uv", trailing=(None, 2), max_dims=2, floating=True, finite=True)
            if self.uv_faces is None:
                self.uv_faces = self.faces
            check_tensor(self.uv_faces, "uv_faces", trailing=(self.faces.shape[0], 3), max_dims=2, floating=False)
            check_indices(self.uv_faces, "uv_faces", self.uv.shape[0])
        elif self.uv_faces is not None:
            raise ValueError("uv_faces given without uv")
        for name, channels in (("normals", 3), ("tangents", 4)):
            t = getattr(self, name)
            if t is not None:
                check_tensor(t, name, trailing=(self.verts.shape[0], channels), max_dims=2, floating=True,
                             finite=True)
        if self.to_world is None:
            self.to_world = torch.eye(4, dtype=self.verts.dtype, device=self.verts.device)
        check_tensor(self.to_world, "to_world", trailing=(4, 4), max_dims=2, floating=True, finite=True)

    @classmethod
    def from_mesh(cls, mesh: Mesh, material: Optional[Material] = None, **kw) -> "SceneMesh":
        """A scene mesh from a :class:`lumigrad.Mesh`; its texture (if any) becomes the base colour map."""
        if material is None:
            material = Material(base_color_texture=mesh.texture) if mesh.texture is not None else None
        return cls(mesh.verts, mesh.faces, material, uv=mesh.uv, uv_faces=mesh.uv_faces, **kw)

    def world_verts(self) -> torch.Tensor:
        """``[V, 3]`` world positions ``to_world @ (verts, 1)``."""
        return self.verts @ self.to_world[:3, :3].T + self.to_world[:3, 3]

    def parameters(self) -> Dict[str, torch.Tensor]:
        out = {name: getattr(self, name) for name in ("verts", "uv", "normals", "tangents", "to_world")
               if getattr(self, name) is not None}
        out.update({f"material.{k}": v for k, v in self.material.parameters().items()})
        return out


@dataclass
class Film:
    """How linear radiance becomes recorded values (:func:`lumigrad.shading.form_image`); all optional.

    ``exposure`` (stops), ``white_balance [C]``, ``vignetting [k]`` are tensors (differentiable) or ``None``;
    ``tone`` is ``"reinhard"``, ``"aces"`` or ``None``; ``encode`` is ``"srgb"``, ``"gamma"`` or ``None``
    (linear HDR output, the default).
    """

    exposure: Optional[torch.Tensor] = None
    white_balance: Optional[torch.Tensor] = None
    vignetting: Optional[torch.Tensor] = None
    tone: Optional[str] = None
    encode: Optional[str] = None
    gamma: Union[float, torch.Tensor] = 2.2

    def __post_init__(self):
        check_choice(self.tone, "tone", (None, "reinhard", "aces"))
        check_choice(self.encode, "encode", (None, "srgb", "gamma"))
        for name in ("exposure", "white_balance", "vignetting", "gamma"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float, torch.Tensor)):
                raise TypeError(f"film {name} must be a float, a tensor or None; got {type(value).__name__}")
            if isinstance(value, torch.Tensor):
                check_tensor(value, name, floating=True, finite=True)
            else:
                check_number(value, name)
        if self.white_balance is not None and bool((torch.as_tensor(self.white_balance) < 0).any()):
            raise ValueError("white_balance gains must be non-negative")
        if bool((torch.as_tensor(self.gamma) <= 0).any()):
            raise ValueError(f"gamma must be positive; got {self.gamma}")

    def parameters(self) -> Dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), torch.Tensor)}


@dataclass
class Scene:
    """Named meshes, lights and cameras, and a :class:`Film`; render it with :func:`lumigrad.render`.

    Names may use letters, digits, ``_`` and ``-`` (they are parts of dotted parameter names).
    """

    meshes: Dict[str, SceneMesh] = field(default_factory=dict)
    lights: Dict[str, Light] = field(default_factory=dict)
    cameras: Dict[str, Camera] = field(default_factory=dict)
    film: Film = field(default_factory=Film)

    def __post_init__(self):
        for group in ("meshes", "lights", "cameras"):
            for name in getattr(self, group):
                _check_name(name, group)

    def add_mesh(self, name: str, mesh: SceneMesh) -> SceneMesh:
        if not isinstance(mesh, SceneMesh):
            raise TypeError(f"mesh must be a SceneMesh; got {type(mesh).__name__}")
        self.meshes[_check_name(name, "meshes")] = mesh
        return mesh

    def add_light(self, name: str, light: Light) -> Light:
        if not isinstance(light, get_args(Light)):
            raise TypeError(f"light must be one of {', '.join(t.__name__ for t in get_args(Light))}; got "
                            f"{type(light).__name__}")
        self.lights[_check_name(name, "lights")] = light
        return light

    def add_camera(self, name: str, camera: Camera) -> Camera:
        if not isinstance(camera, Camera):
            raise TypeError(f"camera must be a lumigrad.Camera; got {type(camera).__name__}")
        self.cameras[_check_name(name, "cameras")] = camera
        return camera

    # ------------------------------------------------------------------------------------ traversal
    def parameters(self) -> Dict[str, torch.Tensor]:
        """Every tensor of the scene under its dotted name (floating tensors only: no face indices)."""
        out: Dict[str, torch.Tensor] = {}
        for name, mesh in self.meshes.items():
            out.update({f"meshes.{name}.{k}": v for k, v in mesh.parameters().items()})
        for name, light in self.lights.items():
            out.update({f"lights.{name}.{k}": v for k, v in light.parameters().items()})
        for name, cam in self.cameras.items():
            cam_params = {"K": cam.K, "world_to_cam": cam.world_to_cam}
            if cam.distortion is not None:
                cam_params["distortion"] = cam.distortion
            out.update({f"cameras.{name}.{k}": v for k, v in cam_params.items()})
        out.update({f"film.{k}": v for k, v in self.film.parameters().items()})
        return out

    def trainable(self, *patterns: str) -> Dict[str, torch.Tensor]:
        """Make the parameters matching any of the glob ``patterns`` require gradients; return them by name.

        Example: ``opt = torch.optim.Adam(scene.trainable("meshes.*.material.roughness_factor").values())``.
        Tensors shared under several names (one image used by two texture slots) are returned once. A
        parameter that is not a leaf (computed from another tensor) is replaced by a detached leaf copy.
        """
        if not patterns:
            raise ValueError("trainable needs at least one name or glob pattern, e.g. 'meshes.*.material.*'")
        params = self.parameters()
        chosen, seen = {}, {}
        for pattern in patterns:
            hits = [n for n in params if fnmatch.fnmatchcase(n, pattern)]
            if not hits:
                raise KeyError(f"no scene parameter matches {pattern!r}; names look like {_examples(params)}")
            for name in hits:
                t = params[name]
                if id(t) in seen:
                    continue
                if not t.is_leaf or not t.is_floating_point():
                    if not t.is_floating_point():
                        raise TypeError(f"scene parameter {name!r} is not floating point and cannot be trained")
                    t = t.detach().clone()
                    self[name] = t
                t.requires_grad_(True)
                seen[id(params[name])] = name
                chosen[name] = t
        return chosen

    def __getitem__(self, name: str) -> torch.Tensor:
        owner, attr = self._owner(name)
        return getattr(owner, attr)

    def __setitem__(self, name: str, value: torch.Tensor) -> None:
        owner, attr = self._owner(name)
        old = getattr(owner, attr)
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"scene[{name!r}] must be set to a torch.Tensor; got {type(value).__name__}")
        if isinstance(old, torch.Tensor) and old.shape != value.shape:
            raise ValueError(f"scene[{name!r}] has shape {tuple(old.shape)}; got {tuple(value.shape)}")
        setattr(owner, attr, value)

    def _owner(self, name: str):
        if name not in self.parameters():
            raise KeyError(f"no scene parameter named {name!r}; names look like {_examples(self.parameters())}")
        parts = name.split(".")
        group, key, rest = parts[0], parts[1], parts[2:]
        owner = self.film if group == "film" else getattr(self, group)[key]
        if group == "film":
            rest = parts[1:]
        for part in rest[:-1]:
            owner = getattr(owner, part)
        return owner, rest[-1]

    def __repr__(self) -> str:
        return (f"Scene(meshes={list(self.meshes)}, lights={list(self.lights)}, cameras={list(self.cameras)}, "
                f"{len(self.parameters())} parameters)")


def _check_name(name: str, group: str) -> str:
    if not isinstance(name, str) or not _NAME_OK.match(name):
        raise ValueError(f"{group} name {name!r} must be non-empty and use only letters, digits, '_' and '-'")
    return name


def _examples(params: Iterable[str]) -> str:
    names = list(params)[:4]
    return ", ".join(repr(n) for n in names) + (" ..." if names else "(the scene is empty)")
