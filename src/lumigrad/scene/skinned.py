"""``SkinnedMesh``: a triangle mesh deformed by a skeleton (skinning) and / or morph targets.

It is a :class:`~lumigrad.scene.SceneMesh` (group ``"meshes"``, owner kind ``"skinned_mesh"``) whose ``verts``,
``normals`` and ``uv`` are the **bind pose**, plus the data that poses it. Every renderer sees it posed:
:meth:`SkinnedMesh.triangles` (what :func:`lumigrad.scene.flatten` and so every integrator reads) poses it from
its parameters, and :meth:`lumigrad.Scene.at` poses it at an animation time into a static ``SceneMesh``.

Posing follows glTF 2.0: morph targets first (``verts + sum_m w_m delta_m``, same for normals and tangent
directions, whose handedness ``w`` is kept), then skinning
with ``skin_matrices = FK(pose) @ inverse_bind``; the skinned result is in the skeleton's world frame and
``to_world`` (identity for glTF skins, whose mesh node transform the spec ignores) is applied on top.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Dict, Mapping, Optional

import torch

from .._checks import check_choice, check_indices, check_tensor
from ..animation import (Skeleton, apply_morph_targets, dual_quaternion_skinning, forward_kinematics,
                         linear_blend_skinning, matrix_to_rotation_6d, normalize_skin_weights, quaternion_to_matrix,
                         rotation_6d_to_matrix, sampled_local_pose, skin_matrices, skin_normals, skin_tangents)
from . import params as P
from .scene import SceneMesh

__all__ = ["SkinnedMesh"]

_DEFORM_KINDS = {"joint_rotation": P.JOINT_ROTATION, "root_translation": P.JOINT_TRANSLATION,
                 "morph_weights": P.MORPH_WEIGHTS, "skin_weights": P.SKIN_WEIGHTS}


@dataclass
class SkinnedMesh(SceneMesh):
    """A mesh posed by a skeleton and / or morph targets (see the module docstring).

    Attributes (beyond :class:`SceneMesh`'s, whose ``verts`` / ``normals`` are the bind pose):
        skeleton: the :class:`~lumigrad.animation.Skeleton` (``None``: morph targets only).
        joints: ``[V, K]`` integer joint indices per vertex (glTF ``JOINTS_0``, ``JOINTS_1`` ... concatenated).
        skin_weights: ``[V, K]`` non-negative weights; normalised per vertex on use (silently: they may be an
            optimisation variable).
        joint_rotation: ``[J, 6]`` local joint rotations in the continuous 6D form (first two matrix rows,
            :func:`~lumigrad.animation.rotation_6d_to_matrix`), default the rest rotations. 6D has no singularity
            or wrap-around, the better parameter for gradient descent (Zhou et al. 2019).
        root_translation: ``[3]`` offset added to the local translation of every root joint, default 0.
        morph_deltas: ``[M, V, 3]`` position displacements of the morph targets; ``morph_normal_deltas``:
            ``[M, V, 3]`` normal displacements or ``None``.
        morph_weights: ``[M]`` weights, default the glTF mesh's ``weights`` (else 0).
        morph_tangent_deltas: ``[M, V, 3]`` displacements of the tangent directions (glTF ``TANGENT`` targets;
            the handedness ``w`` is not morphed) or ``None``; needs ``tangents``.
        node: name of the node the mesh hangs from (an :class:`~lumigrad.animation.Animation`'s morph-weight
            channels target it).
        skinning: ``"linear"`` (glTF's linear blend skinning, default) or ``"dual_quaternion"`` (no
            candy-wrapper collapse; rigid joints only).

    Parameters: :class:`SceneMesh`'s plus ``joint_rotation`` (kind ``joint_rotation``), ``root_translation``
    (``joint_translation``), ``morph_weights`` and ``skin_weights``, present when the mesh has them.

    **Differentiability:** the posed positions and normals are smooth functions of every parameter
    (:func:`~lumigrad.animation.forward_kinematics`, the skinning ops, :func:`~lumigrad.animation.apply_morph_targets`).
    """

    kind: ClassVar[str] = "skinned_mesh"

    skeleton: Optional[Skeleton] = None
    joints: Optional[torch.Tensor] = None
    skin_weights: Optional[torch.Tensor] = None
    joint_rotation: Optional[torch.Tensor] = None
    root_translation: Optional[torch.Tensor] = None
    morph_deltas: Optional[torch.Tensor] = None
    morph_normal_deltas: Optional[torch.Tensor] = None
    morph_weights: Optional[torch.Tensor] = None
    node: str = ""
    skinning: str = "linear"
    morph_tangent_deltas: Optional[torch.Tensor] = None

    def __post_init__(self):
        super().__post_init__()
        check_choice(self.skinning, "skinning", ("linear", "dual_quaternion"))
        V = self.verts.shape[0]
        dtype = self.verts.dtype
        if self.skeleton is not None:
            if not isinstance(self.skeleton, Skeleton):
                raise TypeError(f"skeleton must be a lumigrad.animation.Skeleton; got {type(self.skeleton).__name__}")
            J = self.skeleton.num_joints
            if self.joints is None or self.skin_weights is None:
                raise ValueError("a SkinnedMesh with a skeleton needs joints [V, K] and skin_weights [V, K]")
            check_tensor(self.joints, "joints", trailing=(V, None), max_dims=2, floating=False)
            check_tensor(self.skin_weights, "skin_weights", trailing=(V, self.joints.shape[1]), max_dims=2,
                         floating=True, finite=True)
            check_indices(self.joints, "joints", J)
            normalize_skin_weights(self.skin_weights, "skin_weights", warn=False)  # refuses negative / empty rows
            if self.joint_rotation is None:
                self.joint_rotation = matrix_to_rotation_6d(quaternion_to_matrix(self.skeleton.rest_rotation)).to(dtype)
            check_tensor(self.joint_rotation, "joint_rotation", trailing=(J, 6), max_dims=2, floating=True,
                         finite=True)
            if self.root_translation is None:
                self.root_translation = torch.zeros(3, dtype=dtype, device=self.verts.device)
            check_tensor(self.root_translation, "root_translation", trailing=(3,), max_dims=1, floating=True,
                         finite=True)
        elif self.joints is not None or self.skin_weights is not None:
            raise ValueError("joints / skin_weights given without a skeleton")
        if self.morph_deltas is not None:
            check_tensor(self.morph_deltas, "morph_deltas", trailing=(None, V, 3), max_dims=3, floating=True,
                         finite=True)
            M = self.morph_deltas.shape[0]
            if self.morph_weights is None:
                self.morph_weights = torch.zeros(M, dtype=dtype, device=self.verts.device)
            check_tensor(self.morph_weights, "morph_weights", trailing=(M,), max_dims=1, floating=True, finite=True)
            if self.morph_normal_deltas is not None:
                check_tensor(self.morph_normal_deltas, "morph_normal_deltas", trailing=(M, V, 3), max_dims=3,
                             floating=True, finite=True)
            if self.morph_tangent_deltas is not None:
                if self.tangents is None:
                    raise ValueError("morph_tangent_deltas given without tangents [V, 4] to displace")
                check_tensor(self.morph_tangent_deltas, "morph_tangent_deltas", trailing=(M, V, 3), max_dims=3,
                             floating=True, finite=True)
        elif (self.morph_weights is not None or self.morph_normal_deltas is not None
              or self.morph_tangent_deltas is not None):
            raise ValueError("morph_weights / morph_normal_deltas / morph_tangent_deltas given without morph_deltas")

    # ------------------------------------------------------------------------------------ parameters
    def parameter_kinds(self) -> Dict[str, str]:
        out = super().parameter_kinds()
        out.update({k: v for k, v in _DEFORM_KINDS.items() if getattr(self, k) is not None})
        return out

    def parameters(self) -> Dict[str, torch.Tensor]:
        out = super().parameters()
        out.update({k: getattr(self, k) for k in _DEFORM_KINDS if getattr(self, k) is not None})
        return out

    # ----------------------------------------------------------------------------------------- posing
    def joint_world(self, sample: Optional[Mapping[str, Mapping[str, torch.Tensor]]] = None) -> torch.Tensor:
        """Joint world matrices ``[..., J, 4, 4]`` (before ``to_world``) from the pose parameters, with the local
        properties in ``sample`` (``{joint name: {"translation" | "rotation" | "scale": value}}``, what
        :meth:`Animation.sample` returns) replacing them where present. Samples at a batch of times
        (``animation.sample(torch.tensor([t0, t1, ...]))``) give a batch of poses."""
        sk = self.skeleton
        rotation = rotation_6d_to_matrix(self.joint_rotation)
        translation, scale = sk.rest_translation.to(rotation.dtype), sk.rest_scale.to(rotation.dtype)
        rotation, translation, scale = sampled_local_pose(sk.names, rotation, translation, scale, sample)
        is_root = (sk.parents < 0).to(rotation.dtype)[:, None]
        translation = translation + is_root * self.root_translation
        return forward_kinematics(sk, rotation, translation, scale)

    def pose(self, sample: Optional[Mapping[str, Mapping[str, torch.Tensor]]] = None):
        """Posed ``(verts [..., V, 3], normals [..., V, 3] or None)`` in the mesh's frame (before ``to_world``);
        the leading dims are those of a sample taken at a batch of times (none for one time).

        ``sample`` is an animation sample (:meth:`lumigrad.animation.Animation.sample`): joint channels replace
        the joints' pose parameters and a ``"weights"`` channel of :attr:`node` replaces ``morph_weights``.
        """
        return self._pose(sample)[:2]

    def _pose(self, sample):
        """``pose`` plus the posed tangents ``[..., V, 4]`` (or None)."""
        verts, normals, tangents = self.verts, self.normals, self.tangents
        if self.skeleton is not None and self.skeleton.rest_translation.device != verts.device:
            self.skeleton = self.skeleton.to(device=verts.device)  # the scene was moved parameter by parameter
            self.joints = self.joints.to(verts.device)
        if self.morph_deltas is not None and self.morph_deltas.device != verts.device:
            self.morph_deltas = self.morph_deltas.to(verts.device)
            if self.morph_normal_deltas is not None:
                self.morph_normal_deltas = self.morph_normal_deltas.to(verts.device)
            if self.morph_tangent_deltas is not None:
                self.morph_tangent_deltas = self.morph_tangent_deltas.to(verts.device)
        if self.morph_deltas is not None:
            w = self.morph_weights
            if sample and self.node in sample and "weights" in sample[self.node]:
                w = sample[self.node]["weights"].to(w.dtype)
                if w.shape[-1:] != self.morph_weights.shape:
                    raise ValueError(f"animation weights for node {self.node!r} have {w.shape[-1]} values; the mesh "
                                     f"has {self.morph_weights.shape[0]} morph targets")
            verts = apply_morph_targets(verts, self.morph_deltas, w)
            if normals is not None and self.morph_normal_deltas is not None:
                normals = apply_morph_targets(normals, self.morph_normal_deltas, w)
            if self.morph_tangent_deltas is not None:  # glTF: the deltas move xyz; the handedness w is kept
                xyz = apply_morph_targets(tangents[:, :3], self.morph_tangent_deltas, w)
                tangents = torch.cat([xyz, tangents[:, 3:].to(xyz.dtype).expand(xyz.shape[:-1] + (1,))], -1)
        if self.skeleton is not None:
            S = skin_matrices(self.skeleton, self.joint_world(sample))
            weights = normalize_skin_weights(self.skin_weights, "skin_weights", warn=False)
            if self.skinning == "linear":
                verts_out = linear_blend_skinning(verts, self.joints, weights, S)
                if normals is not None:
                    normals = skin_normals(normals, self.joints, weights, S)
                if tangents is not None:
                    tangents = skin_tangents(tangents, self.joints, weights, S)
            else:
                verts_out = dual_quaternion_skinning(verts, self.joints, weights, S)
                # directions turn by the blended rotation: DQS without translation
                R = torch.cat([S[..., :3, :3], torch.zeros_like(S[..., :3, 3:])], -1)
                R = torch.cat([R, S[..., 3:, :]], -2)
                if normals is not None:
                    normals = dual_quaternion_skinning(normals, self.joints, weights, R)
                if tangents is not None:
                    xyz = dual_quaternion_skinning(tangents[..., :3], self.joints, weights, R)
                    tangents = torch.cat([xyz, tangents[..., 3:].expand(xyz.shape[:-1] + (1,)).to(xyz.dtype)], -1)
            verts = verts_out
        return verts, normals, tangents

    def posed(self, sample: Optional[Mapping[str, Mapping[str, torch.Tensor]]] = None) -> SceneMesh:
        """A static :class:`SceneMesh` of this mesh posed (see :meth:`pose`), sharing its material, ``uv``,
        faces and ``to_world``; its ``verts`` / ``normals`` / ``tangents`` (morphed and skinned like the
        normals, handedness kept) are differentiable w.r.t. this mesh's parameters."""
        verts, normals, tangents = self._pose(sample)
        return SceneMesh(verts, self.faces, self.material, uv=self.uv, uv_faces=self.uv_faces, normals=normals,
                         tangents=tangents, to_world=self.to_world, double_sided=self.double_sided)

    def world_verts(self) -> torch.Tensor:
        """``[V, 3]`` world positions of the mesh posed from its parameters."""
        return self.posed().world_verts()

    def triangles(self, normals: bool = False):
        """World-space triangles of the mesh posed from its parameters (what every renderer draws)."""
        return self.posed().triangles(normals)
