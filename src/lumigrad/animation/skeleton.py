"""Skeletons (joint hierarchies with a rest pose and inverse bind matrices) and forward kinematics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Mapping, Optional, Tuple

import torch

from .._checks import check_tensor
from ..conventions import quaternion_to_matrix

__all__ = ["Skeleton", "forward_kinematics", "sampled_local_pose", "skin_matrices", "trs_to_matrix"]


def trs_to_matrix(translation: torch.Tensor, rotation: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Compose local transforms ``T @ R @ S`` (glTF's order) into ``[..., 4, 4]`` matrices.

    Args:
        translation: ``[..., 3]``.
        rotation: rotation matrices ``[..., 3, 3]``.
        scale: per-axis scale ``[..., 3]``.

    **Differentiability:** linear in each argument.
    """
    batch = torch.broadcast_shapes(translation.shape[:-1], rotation.shape[:-2], scale.shape[:-1])
    RS = rotation * scale[..., None, :]
    top = torch.cat([RS.expand(batch + (3, 3)), translation.expand(batch + (3,))[..., None]], dim=-1)
    bottom = torch.zeros(batch + (1, 4), dtype=top.dtype, device=top.device)
    bottom[..., 0, 3] = 1
    return torch.cat([top, bottom], dim=-2)


def sampled_local_pose(names: List[str], rotation: torch.Tensor, translation: torch.Tensor, scale: torch.Tensor,
                       sample: Optional[Mapping[str, Mapping[str, torch.Tensor]]]
                       ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Local ``(rotation [..., J, 3, 3], translation [..., J, 3], scale [..., J, 3])`` of the nodes ``names``:
    the given ones, replaced where ``sample`` (:meth:`lumigrad.animation.Animation.sample`,
    ``{name: {"translation" | "rotation" (wxyz) | "scale": value}}``) has a value. The leading dims are those
    of the sample (a sample at a batch of times gives a batch of poses); without a sample the inputs return.

    **Differentiability:** the output is the sampled values (rotations through
    :func:`~lumigrad.conventions.quaternion_to_matrix`) where sampled, else the inputs.
    """
    if not sample:
        return rotation, translation, scale
    props_of = [sample.get(name) or {} for name in names]
    batch = torch.Size()
    for props in props_of:
        for key in ("rotation", "translation", "scale"):
            if key in props:
                batch = torch.broadcast_shapes(batch, props[key].shape[:-1])
    rot = [r.expand(batch + (3, 3)) for r in rotation.unbind(0)]
    tr = [x.expand(batch + (3,)) for x in translation.unbind(0)]
    sc = [x.expand(batch + (3,)) for x in scale.unbind(0)]
    for j, props in enumerate(props_of):
        if "rotation" in props:
            rot[j] = quaternion_to_matrix(props["rotation"].to(rotation.dtype)).expand(batch + (3, 3))
        if "translation" in props:
            tr[j] = props["translation"].to(rotation.dtype).expand(batch + (3,))
        if "scale" in props:
            sc[j] = props["scale"].to(rotation.dtype).expand(batch + (3,))
    return torch.stack(rot, -3), torch.stack(tr, -2), torch.stack(sc, -2)


def _topological_order(parents: List[int], names: List[str]) -> List[int]:
    """Return joint indices with every parent before its children; raise on cycles."""
    J = len(parents)
    children = [[] for _ in range(J)]
    roots = []
    for j, p in enumerate(parents):
        (roots if p < 0 else children[p]).append(j)
    order, stack = [], list(reversed(roots))
    while stack:
        j = stack.pop()
        order.append(j)
        stack.extend(reversed(children[j]))
    if len(order) != J:
        unreached = set(range(J)) - set(order)
        # walk parents from an unreached joint until a joint repeats: that loop is the cycle
        j, seen = min(unreached), []
        while j not in seen:
            seen.append(j)
            j = parents[j]
        cycle = seen[seen.index(j):]
        raise ValueError("skeleton parents form a cycle through joints (child -> parent) "
                         + " -> ".join(names[k] for k in cycle + [cycle[0]]))
    return order


@dataclass
class Skeleton:
    """A joint hierarchy with its rest pose.

    Attributes:
        names: joint names, ``J`` strings.
        parents: ``LongTensor [J]``, the parent joint of each joint, ``-1`` for roots.
        rest_translation: ``[J, 3]`` local translation of each joint relative to its parent.
        rest_rotation: ``[J, 4]`` local rotation, unit quaternions ``(w, x, y, z)``.
        rest_scale: ``[J, 3]`` local scale.
        inverse_bind: ``[J, 4, 4]`` maps mesh (bind) space to each joint's space (glTF ``inverseBindMatrices``).
        root_transform: ``[4, 4]`` world transform of whatever sits above the roots (identity by default).

    On construction the joints are checked (parent indices in range, no cycles) and ``order`` (a topological
    order, parents first) is computed; joint indices themselves are never permuted, so ``JOINTS_0`` indices
    keep their meaning. The hierarchy is read once, at construction: build a new ``Skeleton`` to change
    ``parents`` (the rest tensors and ``inverse_bind`` may be replaced freely).
    """

    names: List[str]
    parents: torch.Tensor
    rest_translation: torch.Tensor
    rest_rotation: torch.Tensor
    rest_scale: torch.Tensor
    inverse_bind: torch.Tensor
    root_transform: Optional[torch.Tensor] = None
    order: List[int] = field(init=False, repr=False)
    parent_list: List[int] = field(init=False, repr=False)

    def __post_init__(self):
        self.names = [str(n) for n in self.names]
        J = len(self.names)
        check_tensor(self.parents, "parents", trailing=(J,), max_dims=1, floating=False)
        self.parents = self.parents.long()
        plist = self.parents.tolist()
        bad = [j for j, p in enumerate(plist) if p < -1 or p >= J]
        if bad:
            j = bad[0]
            raise ValueError(f"parents[{j}] = {plist[j]} (joint {self.names[j]!r}) is out of range [-1, {J - 1}]")
        check_tensor(self.rest_translation, "rest_translation", trailing=(J, 3), max_dims=2, floating=True,
                     finite=True)
        check_tensor(self.rest_rotation, "rest_rotation", trailing=(J, 4), max_dims=2, floating=True, finite=True)
        check_tensor(self.rest_scale, "rest_scale", trailing=(J, 3), max_dims=2, floating=True, finite=True)
        check_tensor(self.inverse_bind, "inverse_bind", trailing=(J, 4, 4), max_dims=3, floating=True, finite=True)
        if self.root_transform is None:
            self.root_transform = torch.eye(4, dtype=self.rest_translation.dtype, device=self.rest_translation.device)
        check_tensor(self.root_transform, "root_transform", trailing=(4, 4), max_dims=2, floating=True, finite=True)
        self.order = _topological_order(plist, self.names)
        self.parent_list = plist  # read once: forward kinematics never syncs with the device for it

    @property
    def num_joints(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        """Return the index of the joint called ``name``."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"no joint named {name!r}; joints are {self.names}") from None

    def to(self, device=None, dtype=None) -> "Skeleton":
        """Return a copy with the tensors on ``device`` and the float tensors cast to ``dtype``."""
        f = lambda x: x.to(device=device, dtype=dtype)  # noqa: E731
        return Skeleton(list(self.names), self.parents.to(device=device), f(self.rest_translation),
                        f(self.rest_rotation), f(self.rest_scale), f(self.inverse_bind), f(self.root_transform))


def forward_kinematics(skeleton: Skeleton, rotation: Optional[torch.Tensor] = None,
                       translation: Optional[torch.Tensor] = None,
                       scale: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Compose local joint transforms down the hierarchy into joint world matrices.

    ``world[j] = world[parent[j]] @ T_j @ R_j @ S_j`` with ``world[parent of a root] = skeleton.root_transform``.

    Args:
        skeleton: the hierarchy and its rest pose.
        rotation: local rotation matrices ``[..., J, 3, 3]``; ``None`` uses the rest rotation.
        translation: local translations ``[..., J, 3]``; ``None`` uses the rest translation.
        scale: local scales ``[..., J, 3]``; ``None`` uses the rest scale.

    Returns:
        Joint world matrices ``[..., J, 4, 4]`` (leading dims broadcast across the three inputs).

    **Differentiability:** polynomial in ``rotation``, ``translation`` and ``scale`` (and the skeleton's rest
    tensors where they are used), so gradients flow to all of them.

    Example: a two-joint chain with rest translations ``(0,0,0)`` and ``(1,0,0)`` and the root turned 90 degrees
    about z puts the child joint at world ``(0, 1, 0)``.
    """
    J = skeleton.num_joints
    ref = skeleton.rest_translation
    if rotation is None:
        rotation = quaternion_to_matrix(skeleton.rest_rotation)
    else:
        check_tensor(rotation, "rotation", trailing=(J, 3, 3), floating=True)
    if translation is None:
        translation = skeleton.rest_translation
    else:
        check_tensor(translation, "translation", trailing=(J, 3), floating=True)
    if scale is None:
        scale = skeleton.rest_scale
    else:
        check_tensor(scale, "scale", trailing=(J, 3), floating=True)
    dtype = torch.promote_types(torch.promote_types(rotation.dtype, translation.dtype), scale.dtype)
    local = trs_to_matrix(translation.to(dtype), rotation.to(dtype), scale.to(dtype))  # [..., J, 4, 4]
    return _forward_kinematics_unchecked(local, skeleton.parent_list, skeleton.order,
                                         skeleton.root_transform.to(dtype=dtype, device=ref.device))


def _forward_kinematics_unchecked(local: torch.Tensor, parents: List[int], order: List[int],
                                  root_transform: torch.Tensor) -> torch.Tensor:
    world: List[Optional[torch.Tensor]] = [None] * len(parents)
    for j in order:
        p = parents[j]
        above = root_transform if p < 0 else world[p]
        world[j] = above @ local[..., j, :, :]
    return torch.stack(world, dim=-3)


def skin_matrices(skeleton: Skeleton, joint_world: torch.Tensor) -> torch.Tensor:
    """Return the skinning matrices ``joint_world @ inverse_bind``, ``[..., J, 4, 4]``.

    These map bind-space vertices to posed world space; with the rest pose they are the identity whenever
    ``inverse_bind`` is the inverse of the rest joint world matrices.

    **Differentiability:** linear in ``joint_world`` and ``skeleton.inverse_bind``.
    """
    check_tensor(joint_world, "joint_world", trailing=(skeleton.num_joints, 4, 4), floating=True)
    return joint_world @ skeleton.inverse_bind.to(joint_world.dtype)
