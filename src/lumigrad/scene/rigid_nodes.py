"""``RigidNodes``: the nodes of a scene file that animations move, and the meshes and cameras hanging from them.

A glTF animation may drive the translation / rotation / scale of any node, not only skeleton joints; every mesh
and camera below such a node moves with it. :class:`RigidNodes` keeps just what posing needs, in lumigrad's
conventions (the reader in :mod:`lumigrad.io` converts once): the animated nodes (parents first), for each the
static transform between its nearest animated ancestor (or the world) and its own parent frame, its rest TRS,
and per attached mesh / camera the static transform from its node's frame to the mesh frame (to the OpenCV
camera frame for a camera). :meth:`lumigrad.Scene.at` samples an animation and calls :meth:`RigidNodes.pose`:

``world[j] = world[parent[j]] @ above[j] @ T_j R_j S_j`` (``world[-1] = I``), ``to_world = world[node] @ offset``
and ``world_to_cam = invert_rigid(normalize_columns(world[node] @ offset))`` (a camera is not scaled).

**Differentiability:** the world transforms are polynomial in the sampled translation / rotation / scale, so a
posed mesh's ``to_world`` and a posed camera's ``world_to_cam`` are differentiable w.r.t. the keyframe values.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, List, Mapping, Optional, Tuple

import torch

from .._checks import check_tensor
from ..animation import sampled_local_pose, trs_to_matrix
from ..conventions import invert_rigid, quaternion_to_matrix

__all__ = ["RigidNodes"]

Sample = Mapping[str, Mapping[str, torch.Tensor]]


@dataclass
class RigidNodes:
    """Animated nodes and what hangs from them (see the module docstring).

    Attributes:
        names: the ``N`` animated nodes (animation channel targets), every parent before its children.
        parents: ``N`` ints, the position of each node's nearest animated ancestor, ``-1`` for none.
        above: ``[N, 4, 4]`` static transform from the parent's frame (the world for ``-1``) to the node's
            parent frame (the product of the non-animated nodes' local matrices in between).
        rest_translation, rest_rotation (unit ``wxyz``), rest_scale: ``[N, 3]``, ``[N, 4]``, ``[N, 3]``.
        meshes: ``{mesh name: (node position, offset [4, 4])}``: the mesh's ``to_world`` is
            ``world[node] @ offset``.
        cameras: ``{camera name: (node position, offset [4, 4])}``: the camera-to-world pose (OpenCV axes) is
            ``world[node] @ offset`` with its columns normalised.
    """

    names: List[str]
    parents: List[int]
    above: torch.Tensor
    rest_translation: torch.Tensor
    rest_rotation: torch.Tensor
    rest_scale: torch.Tensor
    meshes: Dict[str, Tuple[int, torch.Tensor]] = field(default_factory=dict)
    cameras: Dict[str, Tuple[int, torch.Tensor]] = field(default_factory=dict)

    def __post_init__(self):
        N = len(self.names)
        if len(self.parents) != N or any(not -1 <= p < j for j, p in enumerate(self.parents)):
            raise ValueError(f"parents must list, per node, -1 or the position of an earlier node; got {self.parents}")
        check_tensor(self.above, "above", trailing=(N, 4, 4), max_dims=3, floating=True, finite=True)
        check_tensor(self.rest_translation, "rest_translation", trailing=(N, 3), max_dims=2, floating=True,
                     finite=True)
        check_tensor(self.rest_rotation, "rest_rotation", trailing=(N, 4), max_dims=2, floating=True, finite=True)
        check_tensor(self.rest_scale, "rest_scale", trailing=(N, 3), max_dims=2, floating=True, finite=True)
        for what, links in (("meshes", self.meshes), ("cameras", self.cameras)):
            for name, (node, offset) in links.items():
                if not 0 <= node < N:
                    raise ValueError(f"{what}[{name!r}] hangs from node {node}; there are {N} animated nodes")
                check_tensor(offset, f"{what}[{name!r}] offset", trailing=(4, 4), max_dims=2, floating=True,
                             finite=True)

    def world(self, sample: Optional[Sample] = None) -> torch.Tensor:
        """World matrices ``[N, 4, 4]`` of the animated nodes, their sampled TRS replacing the rest values."""
        rotation = quaternion_to_matrix(self.rest_rotation)
        rotation, translation, scale = sampled_local_pose(self.names, rotation, self.rest_translation,
                                                          self.rest_scale, sample)
        local = self.above.to(rotation.dtype) @ trs_to_matrix(translation, rotation, scale.to(rotation.dtype))
        world: List[torch.Tensor] = []
        for j, p in enumerate(self.parents):
            world.append(local[j] if p < 0 else world[p] @ local[j])
        return torch.stack(world)

    def moved(self, sample: Optional[Sample]) -> List[bool]:
        """Per node, whether ``sample`` drives it or one of its animated ancestors."""
        out: List[bool] = []
        for j, p in enumerate(self.parents):
            out.append(bool(sample) and self.names[j] in sample or (p >= 0 and out[p]))
        return out

    def pose(self, meshes: Mapping, cameras: Mapping, sample: Optional[Sample]):
        """``(meshes, cameras)``: copies of the two mappings where every attached mesh / camera that ``sample``
        moves is replaced by a copy at its posed transform; the others are passed through."""
        moved = self.moved(sample)
        meshes, cameras = dict(meshes), dict(cameras)
        if not any(moved):
            return meshes, cameras
        world = self.world(sample)
        for name, (node, offset) in self.meshes.items():
            if moved[node] and name in meshes:
                mesh = meshes[name]
                to_world = (world[node] @ offset.to(world.dtype)).to(mesh.to_world)  # its dtype and device
                meshes[name] = replace(mesh, to_world=to_world)
        for name, (node, offset) in self.cameras.items():
            if moved[node] and name in cameras:
                cam = cameras[name]
                c2w = world[node] @ offset.to(world.dtype)
                norms = torch.linalg.vector_norm(c2w[:3, :3], dim=0).clamp_min(1e-300)
                c2w = torch.cat([torch.cat([c2w[:3, :3] / norms, c2w[:3, 3:]], 1), c2w[3:]], 0)
                cameras[name] = cam.replace(world_to_cam=invert_rigid(c2w).to(cam.world_to_cam))
        return meshes, cameras

    def to(self, device=None, dtype=None) -> "RigidNodes":
        """A copy with the tensors on ``device`` and cast to ``dtype``."""
        f = lambda x: x.to(device=device, dtype=dtype)  # noqa: E731
        return RigidNodes(list(self.names), list(self.parents), f(self.above), f(self.rest_translation),
                          f(self.rest_rotation), f(self.rest_scale),
                          {k: (n, f(o)) for k, (n, o) in self.meshes.items()},
                          {k: (n, f(o)) for k, (n, o) in self.cameras.items()})
