"""Skeletal animation, skinning, morph targets and keyframe tracks, in pure PyTorch.

Functional ops, batched over leading dims, float32 / float64:

* rotations: :func:`axis_angle_to_matrix`, :func:`rotation_6d_to_matrix` (and inverses), :func:`quaternion_slerp`;
* :class:`Skeleton`, :func:`forward_kinematics`, :func:`skin_matrices`;
* :func:`linear_blend_skinning`, :func:`dual_quaternion_skinning`, :func:`skin_normals`;
* :func:`apply_morph_targets`;
* :class:`KeyframeTrack`, :func:`sample_track` (glTF 2.0 STEP / LINEAR / CUBICSPLINE), :class:`Animation`.

See ``docs/animation.md``.
"""

from .rotations import (axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_quaternion, matrix_to_rotation_6d,
                        quaternion_multiply, quaternion_slerp, quaternion_to_matrix, rotation_6d_to_matrix)
from .skeleton import Skeleton, forward_kinematics, sampled_local_pose, skin_matrices, trs_to_matrix
from .skinning import (SkinWeightWarning, blend_skin_matrices, dual_quaternion_skinning, linear_blend_skinning,
                       normalize_skin_weights, skin_normals, skin_tangents)
from .morph import apply_morph_targets
from .keyframes import INTERPOLATIONS, TRACK_KINDS, KeyframeTrack, sample_track
from .animation import Animation, Channel

__all__ = ["axis_angle_to_matrix", "matrix_to_axis_angle", "matrix_to_quaternion", "matrix_to_rotation_6d",
           "quaternion_multiply", "quaternion_slerp", "quaternion_to_matrix", "rotation_6d_to_matrix",
           "Skeleton", "forward_kinematics", "sampled_local_pose", "skin_matrices", "trs_to_matrix",
           "SkinWeightWarning", "blend_skin_matrices", "dual_quaternion_skinning", "linear_blend_skinning",
           "normalize_skin_weights", "skin_normals", "skin_tangents", "apply_morph_targets",
           "INTERPOLATIONS", "TRACK_KINDS", "KeyframeTrack", "sample_track", "Animation", "Channel"]
