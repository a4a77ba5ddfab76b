"""``Scene``: typed shapes, emitters (lights), sensors (cameras) and a film, with Mitsuba-style parameter traversal.

The scene owns no maths: :func:`lumigrad.render` reads its tensors and calls the functional ops.

* **Shapes** by kind through the :class:`~lumigrad.scene.Shape` interface, one collection per kind: triangle
  meshes (:class:`SceneMesh`) in ``scene.meshes``; later kinds get their own collection
  (``scene.shapes[group]``, :meth:`Scene.add_shape`).
* **Emitters** in ``scene.lights`` (any registered light type, :mod:`lumigrad.scene.light_types`),
  **sensors** in ``scene.cameras``, and one :class:`Film`.
* **Parameters**: ``scene.parameters()`` returns every tensor under a dotted name
  (``"meshes.bottle.material.roughness_factor"``, ``"lights.key.position"``, ``"cameras.main.K"``,
  ``"film.exposure"``, ``"medium.sigma_a"``); ``scene.param_info(name)`` says what it is
  (:class:`~lumigrad.scene.ParamInfo`: kind, owner, owner kind, shape); ``scene[name]`` reads it and
  ``scene[name] = tensor`` swaps one in (for example a re-parameterised tensor computed each step);
  ``scene.trainable("meshes.*.material.*")`` makes the matching ones require gradients in one call and returns
  them for an optimiser. Reads, writes and ``param_info`` are dictionary lookups in an index the scene keeps up
  to date as owners are added, replaced or removed (also through ``scene.meshes[name] = ...`` and
  ``del scene.lights[name]``).
* **Medium**: ``scene.medium``, the :class:`~lumigrad.shading.HomogeneousMedium` that surrounds everything (the
  camera and the lights sit in it; Mitsuba's sensor medium), or None (vacuum); its tensors are the parameters
  ``medium.sigma_a`` / ``sigma_s`` / ``g``. The path tracer starts camera rays in it; the rasterizer and the
  volume renderer ignore it.
* **Metadata**: ``scene.metadata``, a plain dict of what a scene file said that is no tensor and no part of
  the scene lumigrad renders (a Mitsuba file's integrator, sampler and film settings); never a parameter.
* **Animation**: ``scene.animations``, ``{name: lumigrad.animation.Animation}`` (read from glTF), and
  :meth:`Scene.at` ``(t, animation)``, a scene with every :class:`~lumigrad.scene.SkinnedMesh` posed at time
  ``t`` as a static :class:`SceneMesh` and the meshes and cameras below animated nodes (``scene.rigid_nodes``)
  moved (lights, film and materials shared). Keyframe values are parameters: ``animations.NAME.TARGET.PATH``
  (``PATH`` one of rotation, translation, scale, weights), each the ``values`` tensor of that channel's track
  (kinds ``keyframe_*``).
* **Flattening**: ``scene.flatten()`` merges every triangle shape into world-space tables
  (:func:`lumigrad.scene.flatten.flatten`), for the rasterizer, a BVH and the metrics.
"""

from __future__ import annotations

import fnmatch
import re
import types
from dataclasses import dataclass, fields, is_dataclass
from typing import ClassVar, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple, Union

import torch

from .._checks import check_choice, check_indices, check_mesh, check_number, check_tensor
from ..animation import Animation
from ..cameras.camera import Camera
from ..cameras.pixel_filter import PixelFilter, as_pixel_filter
from ..mesh import Mesh, vertex_normals
from ..shading.material import TEXTURE_SLOTS, Material
from ..shading.medium import HomogeneousMedium
from . import params as P
from .light_types import LIGHT_TYPES, light_type_of
from .lights import Light
from .params import ParamInfo
from .shape import Shape, ShapeTriangles

__all__ = ["Film", "Scene", "SceneMesh"]

_NAME_OK = re.compile(r"^[A-Za-z0-9_\-]+$")

#: What each camera parameter is.
CAMERA_KINDS = {"K": P.INTRINSICS, "world_to_cam": P.WORLD_TO_CAM, "distortion": P.DISTORTION,
                "aperture_radius": P.APERTURE, "focus_distance": P.FOCUS_DISTANCE}
#: What each film parameter is.
FILM_KINDS = {"exposure": P.EXPOSURE, "white_balance": P.WHITE_BALANCE, "vignetting": P.VIGNETTING,
              "gamma": P.GAMMA}
_MESH_KINDS = {"verts": P.VERTICES, "uv": P.UV, "normals": P.NORMALS, "tangents": P.TANGENTS,
               "to_world": P.TO_WORLD}
_FIXED_GROUPS = ("lights", "cameras", "film", "animations", "medium")
#: What each parameter of the scene's medium is.
MEDIUM_KINDS = {"sigma_a": P.MEDIUM_COEFFICIENT, "sigma_s": P.MEDIUM_COEFFICIENT, "g": P.PHASE_ASYMMETRY}


@dataclass
class SceneMesh(Shape):
    """One triangle mesh of a scene, in its local frame, with its material (a :class:`Shape` of kind ``"mesh"``).

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

    Parameters (:meth:`parameters`, kinds from :mod:`lumigrad.scene.params`): ``verts`` (vertices), ``uv``,
    ``normals``, ``tangents``, ``to_world``, and ``material.*`` (``texels`` for texture slots, ``factor``
    for the rest; with an interior medium, ``material.interior.sigma_a`` / ``sigma_s`` (``medium_coefficient``)
    and ``material.interior.g`` (``phase_asymmetry``), and likewise ``material.exterior.*``).
    """

    group: ClassVar[str] = "meshes"
    kind: ClassVar[str] = "mesh"

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
        out = {name: getattr(self, name) for name in _MESH_KINDS if getattr(self, name) is not None}
        out.update({f"material.{k}": v for k, v in self.material.parameters().items()})
        out.update({f"material.{k}": v for k, v in self.material.media_parameters().items()})
        return out

    def parameter_kinds(self) -> Dict[str, str]:
        out = {name: kind for name, kind in _MESH_KINDS.items() if getattr(self, name) is not None}
        out.update({f"material.{k}": P.TEXELS if k in TEXTURE_SLOTS else P.FACTOR
                    for k in self.material.parameters()})
        out.update({f"material.{k}": MEDIUM_KINDS[k.rsplit(".", 1)[1]] for k in self.material.media_parameters()})
        return out

    def triangles(self, normals: bool = False) -> ShapeTriangles:
        """World positions, and with ``normals`` world shading normals (``normals @ to_world^-1`` for given
        ones, area-weighted vertex normals of the world positions otherwise) and world tangents."""
        wv = self.world_verts()
        wn = tangents = None
        if normals:
            if self.normals is None:
                wn = vertex_normals(wv, self.faces)
            else:  # normals transform with the inverse transpose: n_w = M^-T n, i.e. n @ M^-1 for row vectors
                wn = self.normals @ torch.linalg.inv(self.to_world[:3, :3])
            if self.tangents is not None:
                M = self.to_world[:3, :3]
                sign = torch.sign(torch.linalg.det(M.detach()))
                tangents = torch.cat([self.tangents[:, :3] @ M.T, self.tangents[:, 3:] * sign], -1)
        return ShapeTriangles(wv, self.faces, self.material, self.uv, self.uv_faces, wn, tangents, self.double_sided)


@dataclass
class Film:
    """How linear radiance becomes recorded values (:func:`lumigrad.shading.form_image`); all optional.

    ``exposure`` (stops), ``white_balance [C]``, ``vignetting [k]`` are tensors (differentiable) or ``None``;
    ``tone`` is ``"reinhard"``, ``"aces"`` or ``None``; ``encode`` is ``"srgb"``, ``"gamma"`` or ``None``
    (linear HDR output, the default). ``pixel_filter``: how the Monte Carlo integrators (``"path"``,
    ``"direct"``) weigh the radiance around each pixel (:mod:`lumigrad.cameras.pixel_filter`: ``"box"``, the
    default, ``"tent"``, ``"gaussian"`` (Mitsuba's default), ``"mitchell"``, ``"catmullrom"``, ``"lanczos"``, a
    dict of a Mitsuba ``rfilter``'s properties or a :class:`~lumigrad.cameras.pixel_filter.PixelFilter`); the
    rasterizer samples pixel centres and ignores it.
    """

    exposure: Optional[torch.Tensor] = None
    white_balance: Optional[torch.Tensor] = None
    vignetting: Optional[torch.Tensor] = None
    tone: Optional[str] = None
    encode: Optional[str] = None
    gamma: Union[float, torch.Tensor] = 2.2
    pixel_filter: Union[None, str, dict, PixelFilter] = None

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

    def __setattr__(self, name, value):
        if name == "pixel_filter":  # a name or a dict set later is checked and converted too
            value = as_pixel_filter(value, "film pixel_filter")
        super().__setattr__(name, value)

    def parameters(self) -> Dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), torch.Tensor)}


def _move_tensor_fields(obj, device, dtype, moved: Dict[int, Tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Each tensor field of ``obj`` (a dataclass that is not frozen; anything else is left as it is) moved to
    ``device`` (None: kept) and, floating-point ones, cast to ``dtype`` (None: kept), in place. ``moved`` maps
    ``id(old)`` to ``(old, new)``, so a tensor held twice (by a parameter and another field) stays one tensor; a
    field already in place is left as it is."""
    if not is_dataclass(obj) or isinstance(obj, type) or obj.__dataclass_params__.frozen:
        return
    for f in fields(obj):
        t = getattr(obj, f.name)
        if not isinstance(t, torch.Tensor):
            continue
        if id(t) not in moved:
            moved[id(t)] = (t, t.to(t.device if device is None else device,
                                    dtype if dtype is not None and t.is_floating_point() else t.dtype))
        if moved[id(t)][1] is not t:
            setattr(obj, f.name, moved[id(t)][1])


@dataclass
class _Entry:
    """Where a parameter lives: ``getattr`` along ``path`` from ``obj``, and what it is."""

    obj: object
    path: Tuple[str, ...]
    kind: str
    group: str
    owner: str
    owner_kind: str

    def slot(self) -> Tuple[object, str]:
        """``(object, attribute)`` holding the tensor; an owner with ``parameter_slot(local name)`` (an
        animation: the tensor is a track's ``values``) says where, else ``getattr`` along ``path``."""
        resolve = getattr(self.obj, "parameter_slot", None)
        if resolve is not None:
            return resolve(".".join(self.path))
        obj = self.obj
        for part in self.path[:-1]:
            obj = getattr(obj, part)
        return obj, self.path[-1]

    def get(self):
        holder, attr = self.slot()
        return getattr(holder, attr, None)


class _Group(dict):
    """One collection of a scene (name -> owner) that checks what goes in and keeps the scene's index current."""

    def __init__(self, group: str, scene: Optional["Scene"] = None, items: Optional[Mapping] = None):
        super().__init__()
        self.group = group
        self._scene = scene
        for name, value in dict(items or {}).items():
            self[name] = value

    def __setitem__(self, name, value) -> None:
        _check_member(self.group, value)
        _check_name(name, self.group)
        super().__setitem__(name, value)
        if self._scene is not None:
            self._scene._index_owner(self.group, name, value)

    def __delitem__(self, name) -> None:
        super().__delitem__(name)
        if self._scene is not None:
            self._scene._unindex_owner(self.group, name)

    def pop(self, name, *default):
        if name not in self:
            return super().pop(name, *default)
        value = super().pop(name)
        if self._scene is not None:
            self._scene._unindex_owner(self.group, name)
        return value

    def popitem(self):
        name, value = super().popitem()
        if self._scene is not None:
            self._scene._unindex_owner(self.group, name)
        return name, value

    def clear(self) -> None:
        for name in list(self):
            del self[name]

    def update(self, *args, **kw) -> None:
        for name, value in dict(*args, **kw).items():
            self[name] = value

    def setdefault(self, name, default=None):
        if name not in self:
            self[name] = default
        return self[name]

    def __ior__(self, other):
        self.update(other)
        return self

    def __reduce__(self):  # copies and pickles hold the items only; the scene re-attaches its collections
        return (_Group, (self.group,), None, None, iter(self.items()))


class Scene:
    """Typed shapes, lights and cameras, and a :class:`Film`; render it with :func:`lumigrad.render`.

    Args:
        meshes, lights, cameras: ``{name: SceneMesh}``, ``{name: light}``, ``{name: Camera}`` (optional).
        film: the :class:`Film` (default: linear HDR output).
        metadata: a plain dict of settings a scene file gave that are not part of the scene itself (e.g. a
            Mitsuba file's ``{"integrator": {"type": "path", "max_depth": 6}, ...}``); kept in
            ``scene.metadata``, copied and pickled with the scene, never a parameter.
        medium: the :class:`~lumigrad.shading.HomogeneousMedium` that fills the space around the shapes and
            holds the camera and the lights (``scene.medium``; None: vacuum). A number ``g`` becomes a tensor
            (a copy of the medium is kept). See :attr:`medium`.

    Names may use letters, digits, ``_`` and ``-`` (they are parts of dotted parameter names).
    """

    def __init__(self, meshes: Optional[Mapping[str, SceneMesh]] = None, lights: Optional[Mapping[str, Light]] = None,
                 cameras: Optional[Mapping[str, Camera]] = None, film: Optional[Film] = None,
                 metadata: Optional[Mapping] = None, animations: Optional[Mapping] = None,
                 medium: Optional[HomogeneousMedium] = None):
        self._setup({"meshes": meshes or {}}, lights or {}, cameras or {}, film if film is not None else Film(),
                    medium)
        self.metadata = dict(metadata or {})
        self.animations = dict(animations or {})
        self.rigid_nodes = None  # RigidNodes: animated non-joint nodes and the meshes / cameras below them

    def _setup(self, shapes: Mapping[str, Mapping], lights: Mapping, cameras: Mapping, film: Film,
               medium: Optional[HomogeneousMedium] = None) -> None:
        self._index: Dict[str, _Entry] = {}
        self._owned: Dict[Tuple[str, str], List[str]] = {}  # (group, owner name) -> its parameter names
        self._shapes: Dict[str, _Group] = {}
        self._shapes["meshes"] = _Group("meshes", self)
        for group, members in shapes.items():
            _check_shape_group(group)
            self._shapes.setdefault(group, _Group(group, self)).update(members)
        self._lights = _Group("lights", self, lights)
        self._cameras = _Group("cameras", self, cameras)
        self._animations = _Group("animations", self)
        self.film = film
        self.medium = medium

    # ---------------------------------------------------------------------------------- collections
    @property
    def meshes(self) -> Dict[str, SceneMesh]:
        """The triangle meshes, ``{name: SceneMesh}`` (the ``"meshes"`` shape collection)."""
        return self._shapes["meshes"]

    @meshes.setter
    def meshes(self, value: Mapping[str, SceneMesh]) -> None:
        _replace(self._shapes["meshes"], value)

    @property
    def shapes(self) -> Mapping[str, Dict[str, Shape]]:
        """Every shape collection by group (``{"meshes": scene.meshes, ...}``), read-only."""
        return types.MappingProxyType(self._shapes)

    @property
    def lights(self) -> Dict[str, Light]:
        """The emitters, ``{name: light}``."""
        return self._lights

    @lights.setter
    def lights(self, value: Mapping[str, Light]) -> None:
        _replace(self._lights, value)

    @property
    def cameras(self) -> Dict[str, Camera]:
        """The sensors, ``{name: Camera}``."""
        return self._cameras

    @cameras.setter
    def cameras(self, value: Mapping[str, Camera]) -> None:
        _replace(self._cameras, value)

    @property
    def animations(self) -> Dict[str, Animation]:
        """The animations, ``{name: lumigrad.animation.Animation}``; their keyframe values are parameters."""
        return self._animations

    @animations.setter
    def animations(self, value: Mapping[str, Animation]) -> None:
        _replace(self._animations, value)

    @property
    def film(self) -> Film:
        return self._film

    @film.setter
    def film(self, value: Film) -> None:
        if not isinstance(value, Film):
            raise TypeError(f"film must be a lumigrad.Film; got {type(value).__name__}")
        self._film = value
        self._index_owner("film", "film", value)

    @property
    def medium(self) -> Optional[HomogeneousMedium]:
        """The medium around everything (Mitsuba's sensor medium), or None (vacuum).

        The path tracer starts camera rays in it, attenuates the light samples of vertices in it by its
        transmittance (it is unbounded: a light at infinity, directional or the environment, gets
        ``exp(-sigma_t inf)``, 0 where ``sigma_t > 0``) and enters it where a path refracts out of a mesh whose
        material has no ``exterior``. Its tensors are the parameters ``medium.sigma_a``, ``medium.sigma_s``
        (kind ``medium_coefficient``) and ``medium.g`` (``phase_asymmetry``)."""
        return self._medium

    @medium.setter
    def medium(self, value: Optional[HomogeneousMedium]) -> None:
        if value is not None and not isinstance(value, HomogeneousMedium):
            raise TypeError(f"medium must be a HomogeneousMedium or None; got {type(value).__name__}")
        if value is not None:
            value = value.with_tensor_g(value.sigma_a.dtype)
        self._medium = value
        if value is None:
            self._unindex_owner("medium", "medium")
        else:
            self._index_owner("medium", "medium", value)

    def add_mesh(self, name: str, mesh: SceneMesh) -> SceneMesh:
        self.meshes[name] = mesh
        return mesh

    def add_shape(self, name: str, shape: Shape) -> Shape:
        """Add ``shape`` to the collection of its kind (``shape.group``, created on first use)."""
        if not isinstance(shape, Shape):
            raise TypeError(f"shape must implement lumigrad.scene.Shape; got {type(shape).__name__}")
        if shape.group not in self._shapes:
            _check_shape_group(shape.group)
            self._shapes[shape.group] = _Group(shape.group, self)
        self._shapes[shape.group][name] = shape
        return shape

    def add_light(self, name: str, light: Light) -> Light:
        self.lights[name] = light
        return light

    def add_camera(self, name: str, camera: Camera) -> Camera:
        self.cameras[name] = camera
        return camera

    def _groups(self) -> Iterator[Tuple[str, Dict]]:
        yield from self._shapes.items()
        yield "lights", self._lights
        yield "cameras", self._cameras
        yield "animations", self._animations

    # ------------------------------------------------------------------------------------ traversal
    def parameters(self) -> Dict[str, torch.Tensor]:
        """Every tensor of the scene under its dotted name (floating tensors only: no face indices)."""
        out: Dict[str, torch.Tensor] = {}
        for group, members in self._groups():
            for owner, obj in members.items():
                out.update({f"{group}.{owner}.{k}": v for k, v in _owner_parameters(group, obj).items()})
        out.update({f"film.{k}": v for k, v in self.film.parameters().items()})
        if self.medium is not None:
            out.update({f"medium.{k}": v for k, v in self.medium.parameters().items()})
        return out

    def param_info(self, name: str) -> ParamInfo:
        """What the parameter ``name`` is (:class:`~lumigrad.scene.ParamInfo`: kind, owner, owner kind, shape).

        Raises:
            KeyError: the scene has no parameter ``name`` (the message shows some names it has).
        """
        entry, value = self._lookup(name)
        return ParamInfo(name, entry.kind, entry.group, entry.owner, entry.owner_kind, entry.path[-1],
                         tuple(value.shape), entry.obj)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self._lookup(name)
        except KeyError:
            return False
        return True

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
        return self._lookup(name)[1]

    def __setitem__(self, name: str, value: torch.Tensor) -> None:
        entry, old = self._lookup(name)
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"scene[{name!r}] must be set to a torch.Tensor; got {type(value).__name__}")
        if old.shape != value.shape:
            raise ValueError(f"scene[{name!r}] has shape {tuple(old.shape)}; got {tuple(value.shape)}")
        holder, attr = entry.slot()
        setattr(holder, attr, value)

    def to(self, device=None, dtype: Optional[torch.dtype] = None) -> "Scene":
        """Move every tensor of the scene (parameters, face indices, animation key times) to ``device`` and cast
        its floating-point parameters to ``dtype`` (None: keep each), in place; return the scene. A tensor shared by
        several names stays shared; one already on ``device`` with ``dtype`` is kept (a leaf that is cast is a
        new tensor: take ``scene.parameters()`` again to optimise it). ``dtype`` float32 renders on the fused
        kernels; float64 is the reference twins' precision.

        Example:
            >>> from lumigrad.scene.lights import PointLight
            >>> scene = Scene()
            >>> key = scene.add_light("key", PointLight(torch.zeros(3, dtype=torch.float64),
            ...                                         torch.tensor(1.0, dtype=torch.float64)))
            >>> scene.to(dtype=torch.float32)["lights.key.position"].dtype
            torch.float32
        """
        if dtype is not None and (not isinstance(dtype, torch.dtype) or not dtype.is_floating_point):
            raise TypeError(f"dtype must be a floating-point torch.dtype; got {dtype!r}")
        device = None if device is None else torch.device(device)
        moved: Dict[int, Tuple[torch.Tensor, torch.Tensor]] = {}  # id(old) -> (old, new): old kept alive, its id unique
        for name, t in self.parameters().items():
            want_dtype = dtype if dtype is not None and t.is_floating_point() else t.dtype
            want_device = device if device is not None else t.device
            if t.device != want_device or t.dtype != want_dtype:
                if id(t) not in moved:
                    moved[id(t)] = (t, t.to(want_device, want_dtype))
                self[name] = moved[id(t)][1]
        # the other tensors the meshes and lights hold (face indices, morph targets, skeletons' rest poses)
        for holder in [*self.meshes.values(), *self.lights.values()]:
            _move_tensor_fields(holder, device, dtype, moved)
            if getattr(holder, "skeleton", None) is not None:
                _move_tensor_fields(holder.skeleton, device, dtype, moved)
        if device is not None:
            for animation in self.animations.values():  # key times follow their values (parameters, moved above)
                for channel in animation.channels:
                    channel.track.times = channel.track.times.to(device)
        return self

    def flatten(self, *, emitters: bool = False, normals: bool = False):
        """Every triangle shape (and, with ``emitters``, every area light) merged into world-space tables:
        :func:`lumigrad.scene.flatten.flatten`."""
        from .flatten import flatten

        return flatten(self, emitters=emitters, normals=normals)

    # ------------------------------------------------------------------------------------- animation
    def at(self, t, animation: Optional[str] = None) -> "Scene":
        """The scene at time ``t`` (seconds) of an animation: a new :class:`Scene` whose skinned / morphed
        meshes are posed (static :class:`SceneMesh` es), everything else shared.

        Args:
            t: the time; outside an animation's keyframes its channels are clamped (glTF).
            animation: the name of one of ``scene.animations``; ``None`` plays the first one (file order), and
                a scene without animations poses its skinned meshes from their pose parameters (equal to
                rendering the scene itself).

        Returns:
            A scene with the same lights, film, metadata and animations (the same objects), each
            :class:`~lumigrad.scene.SkinnedMesh` replaced by its posed mesh (joints and morph weights without a
            channel keep their pose parameters), and the meshes and cameras hanging from nodes the animation
            moves (``scene.rigid_nodes``, :class:`~lumigrad.scene.RigidNodes`, read from glTF) replaced by
            copies with the animated ``to_world`` / ``world_to_cam`` (which then overrides theirs); every other
            shape and camera is shared.

        **Differentiability:** the posed vertices and normals are differentiable w.r.t. the skinned meshes'
        parameters (pose, morph weights, skin weights, bind-pose vertices) and the animation's keyframe values;
        so are the animated ``to_world`` and ``world_to_cam`` w.r.t. the keyframe values.
        """
        check_number(t, "t")
        if animation is None:
            anim = next(iter(self.animations.values()), None)
        elif animation in self.animations:
            anim = self.animations[animation]
        else:
            raise KeyError(f"no animation named {animation!r}; the scene has {sorted(self.animations) or 'none'}")
        sample = anim.sample(float(t)) if anim is not None else None
        shapes = {group: {name: (shape.posed(sample) if hasattr(shape, "posed") else shape)
                          for name, shape in members.items()}
                  for group, members in self._shapes.items()}
        cameras = dict(self._cameras)
        if self.rigid_nodes is not None:
            shapes["meshes"], cameras = self.rigid_nodes.pose(shapes["meshes"], cameras, sample)
        out = Scene.__new__(Scene)
        out._setup(shapes, dict(self._lights), cameras, self.film, self.medium)
        out.metadata = self.metadata
        out.animations = self.animations
        out.rigid_nodes = self.rigid_nodes
        return out

    # -------------------------------------------------------------------------------------- the index
    def _lookup(self, name: str) -> Tuple[_Entry, torch.Tensor]:
        """The index entry of ``name`` and its tensor. An owner's attribute set directly (``mesh.normals = t``)
        can leave the index behind: a miss rebuilds it once before ``name`` is declared unknown."""
        entry = self._index.get(name) if isinstance(name, str) else None
        value = entry.get() if entry is not None else None
        if not isinstance(value, torch.Tensor):
            self._reindex()
            entry = self._index.get(name) if isinstance(name, str) else None
            value = entry.get() if entry is not None else None
            if not isinstance(value, torch.Tensor):
                raise KeyError(f"no scene parameter named {name!r}; names look like {_examples(self.parameters())}")
        return entry, value

    def _index_owner(self, group: str, owner: str, obj) -> None:
        self._unindex_owner(group, owner)
        kinds, owner_kind = _owner_kinds(group, obj)
        prefix = f"{group}." if group in ("film", "medium") else f"{group}.{owner}."
        names = []
        for local, value in _owner_parameters(group, obj).items():
            full = prefix + local
            self._index[full] = _Entry(obj, tuple(local.split(".")), kinds.get(local, P.OTHER), group, owner,
                                       owner_kind)
            names.append(full)
        self._owned[(group, owner)] = names

    def _unindex_owner(self, group: str, owner: str) -> None:
        for full in self._owned.pop((group, owner), ()):
            self._index.pop(full, None)

    def _reindex(self) -> None:
        self._index.clear()
        self._owned.clear()
        for group, members in self._groups():
            for owner, obj in members.items():
                self._index_owner(group, owner, obj)
        self._index_owner("film", "film", self.film)
        if self.medium is not None:
            self._index_owner("medium", "medium", self.medium)

    # ------------------------------------------------------------------------------ copies, pickles
    def __getstate__(self):
        return {"shapes": {g: dict(m) for g, m in self._shapes.items()}, "lights": dict(self._lights),
                "cameras": dict(self._cameras), "film": self._film, "metadata": self.metadata,
                "animations": self.animations, "rigid_nodes": self.rigid_nodes, "medium": self._medium}

    def __setstate__(self, state) -> None:
        self._setup(state["shapes"], state["lights"], state["cameras"], state["film"], state.get("medium"))
        self.metadata = dict(state.get("metadata", {}))
        self.animations = dict(state.get("animations", {}))
        self.rigid_nodes = state.get("rigid_nodes")

    def __repr__(self) -> str:
        shapes = "".join(f"{g}={list(m)}, " for g, m in self._shapes.items())
        return f"Scene({shapes}lights={list(self.lights)}, cameras={list(self.cameras)}, " \
               f"{len(self.parameters())} parameters)"


def _replace(members: _Group, value: Mapping) -> None:
    """Replace a collection's contents by ``value``'s (checked before anything is removed)."""
    items = dict(value)
    for name, member in items.items():
        _check_member(members.group, member)
        _check_name(name, members.group)
    members.clear()
    members.update(items)


def _owner_parameters(group: str, obj) -> Dict[str, torch.Tensor]:
    """An owner's tensors by local name."""
    return obj.parameters()


def _owner_kinds(group: str, obj) -> Tuple[Dict[str, str], str]:
    """``({local name: kind}, owner kind)`` of an owner of ``group``."""
    if group == "lights":
        light_type = light_type_of(obj)
        return dict(light_type.param_kinds), light_type.name
    if group == "cameras":
        return CAMERA_KINDS, "camera"
    if group == "film":
        return FILM_KINDS, "film"
    if group == "medium":
        return MEDIUM_KINDS, "medium"
    return obj.parameter_kinds(), obj.kind


def _check_member(group: str, value) -> None:
    if group == "lights":
        if light_type_of(value) is None:
            classes = ", ".join(e.cls.__name__ for _, e in LIGHT_TYPES.items())
            raise TypeError(f"light must be one of {classes}; got {type(value).__name__}")
    elif group == "cameras":
        if not isinstance(value, Camera):
            raise TypeError(f"camera must be a lumigrad.Camera; got {type(value).__name__}")
    elif group == "animations":
        if not isinstance(value, Animation):
            raise TypeError(f"animation must be a lumigrad.animation.Animation; got {type(value).__name__}")
    elif group == "meshes":
        if not isinstance(value, SceneMesh):
            raise TypeError(f"mesh must be a SceneMesh; got {type(value).__name__}")
    elif not isinstance(value, Shape) or value.group != group:
        raise TypeError(f"{group} holds shapes whose group is {group!r}; got {type(value).__name__}")


def _check_shape_group(group: str) -> None:
    if group in _FIXED_GROUPS or not isinstance(group, str) or not _NAME_OK.match(group):
        raise ValueError(f"a shape group must be a name other than {', '.join(_FIXED_GROUPS)}; got {group!r}")


def _check_name(name: str, group: str) -> str:
    if not isinstance(name, str) or not _NAME_OK.match(name):
        raise ValueError(f"{group} name {name!r} must be non-empty and use only letters, digits, '_' and '-'")
    return name


def _examples(params: Iterable[str]) -> str:
    names = list(params)[:4]
    return ", ".join(repr(n) for n in names) + (" ..." if names else "(the scene is empty)")
