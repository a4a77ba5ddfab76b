"""What a scene parameter is: :class:`ParamInfo` and the documented set of parameter kinds.

``scene.param_info(name)`` answers from the scene's index, so code above the scene (``fitting/``, reports,
metrics) asks the scene what ``"meshes.cow.to_world"`` is instead of parsing the name. Each owner declares
the kinds of its own parameters: shapes through :meth:`lumigrad.scene.Shape.parameter_kinds`, light types
when they are registered (:func:`lumigrad.scene.register_light_type`), cameras and the film in
:mod:`lumigrad.scene.scene`.

========================= ==================================================================================
kind                      parameters
========================= ==================================================================================
``vertices``              positions of a triangle shape or area light, ``[V, 3]`` (local frame for shapes)
``to_world``              a shape's local-to-world rigid transform (pose), ``[4, 4]``
``uv``                    texture coordinates, ``[T, 2]``
``normals``               per-vertex shading normals, ``[V, 3]``
``tangents``              per-vertex glTF tangents, ``[V, 4]``
``factor``                a material constant (``base_color_factor``, ``roughness_factor``, ``ior`` ...)
``texels``                a material texture, ``[H, W, C]``
``medium_coefficient``    an interior medium's ``sigma_a`` or ``sigma_s`` (per unit length), ``[C]``
``phase_asymmetry``       an interior medium's Henyey-Greenstein ``g`` in (-1, 1)
``intrinsics``            a camera's ``K``, ``[..., 3, 3]``
``world_to_cam``          a camera's extrinsics (pose), ``[..., 4, 4]``
``distortion``            a camera's lens distortion coefficients
``aperture``              a thin-lens camera's aperture radius (world units, non-negative)
``focus_distance``        a thin-lens camera's depth in focus (camera-frame, positive)
``light_intensity``       a light's scalar strength (``intensity``, ``irradiance``, environment ``scale``)
``light_color``           a light's colour, ``[C]``
``light_position``        a light's position, ``[3]``
``light_direction``       a light's direction, ``[3]``
``light_angle``           a spot light's cone angles (radians)
``light_radiance``        an area light's emitted radiance, ``[C]`` or ``[F, C]``
``environment_texels``    an environment light's equirectangular map, ``[H, W, C]``
``sh_coeffs``             SH radiance coefficients of an SH light, ``[K, C]``
``joint_rotation``        a skinned mesh's local joint rotations, 6D (two matrix rows), ``[J, 6]``
``joint_translation``     a skinned mesh's offset of its root joints' translation, ``[3]``
``morph_weights``         morph-target weights, ``[M]``
``skin_weights``          skinning weights per vertex and influence, ``[V, K]`` (non-negative)
``keyframe_rotation``     an animation channel's keyframe rotations, unit ``(w, x, y, z)``, ``[N, 4]``
``keyframe_translation``  an animation channel's keyframe translations, ``[N, 3]``
``keyframe_scale``        an animation channel's keyframe scales, ``[N, 3]``
``keyframe_weights``      an animation channel's keyframe morph weights, ``[N, M]``
``exposure``              the film's exposure (stops)
``white_balance``         the film's per-channel gains
``vignetting``            the film's vignetting coefficients
``gamma``                 the film's encoding gamma
``other``                 a parameter whose owner declares no kind
========================= ==================================================================================

``POSE_KINDS`` are the rigid transforms (``to_world``, ``world_to_cam``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Tuple

__all__ = ["NONNEGATIVE_KINDS", "PARAM_KINDS", "POSE_KINDS", "ParamInfo"]

VERTICES = "vertices"
TO_WORLD = "to_world"
UV = "uv"
NORMALS = "normals"
TANGENTS = "tangents"
FACTOR = "factor"
TEXELS = "texels"
MEDIUM_COEFFICIENT = "medium_coefficient"
PHASE_ASYMMETRY = "phase_asymmetry"
INTRINSICS = "intrinsics"
WORLD_TO_CAM = "world_to_cam"
DISTORTION = "distortion"
APERTURE = "aperture"
FOCUS_DISTANCE = "focus_distance"
LIGHT_INTENSITY = "light_intensity"
LIGHT_COLOR = "light_color"
LIGHT_POSITION = "light_position"
LIGHT_DIRECTION = "light_direction"
LIGHT_ANGLE = "light_angle"
LIGHT_RADIANCE = "light_radiance"
ENVIRONMENT_TEXELS = "environment_texels"
SH_COEFFS = "sh_coeffs"
EXPOSURE = "exposure"
WHITE_BALANCE = "white_balance"
VIGNETTING = "vignetting"
GAMMA = "gamma"
JOINT_ROTATION = "joint_rotation"
JOINT_TRANSLATION = "joint_translation"
MORPH_WEIGHTS = "morph_weights"
SKIN_WEIGHTS = "skin_weights"
KEYFRAME_ROTATION = "keyframe_rotation"
KEYFRAME_TRANSLATION = "keyframe_translation"
KEYFRAME_SCALE = "keyframe_scale"
KEYFRAME_WEIGHTS = "keyframe_weights"
OTHER = "other"

#: Every kind a :class:`ParamInfo` may have (the table of the module docstring).
PARAM_KINDS = (VERTICES, TO_WORLD, UV, NORMALS, TANGENTS, FACTOR, TEXELS, MEDIUM_COEFFICIENT, PHASE_ASYMMETRY,
               INTRINSICS, WORLD_TO_CAM, DISTORTION, APERTURE, FOCUS_DISTANCE,
               LIGHT_INTENSITY, LIGHT_COLOR, LIGHT_POSITION, LIGHT_DIRECTION, LIGHT_ANGLE, LIGHT_RADIANCE,
               ENVIRONMENT_TEXELS, SH_COEFFS, EXPOSURE, WHITE_BALANCE, VIGNETTING, GAMMA,
               JOINT_ROTATION, JOINT_TRANSLATION, MORPH_WEIGHTS, SKIN_WEIGHTS,
               KEYFRAME_ROTATION, KEYFRAME_TRANSLATION, KEYFRAME_SCALE, KEYFRAME_WEIGHTS, OTHER)

#: Kinds that are rigid transforms ``[..., 4, 4]``.
POSE_KINDS = (TO_WORLD, WORLD_TO_CAM)

#: Kinds whose values must be non-negative (checked when the owner is built and by renderers every frame).
NONNEGATIVE_KINDS = (LIGHT_INTENSITY, LIGHT_COLOR, LIGHT_RADIANCE, MEDIUM_COEFFICIENT, SKIN_WEIGHTS, APERTURE)


@dataclass(frozen=True)
class ParamInfo:
    """What one scene parameter is.

    Attributes:
        name: its full name, e.g. ``"meshes.cow.material.roughness_factor"``.
        kind: one of :data:`PARAM_KINDS`, e.g. ``"factor"``.
        group: the scene collection holding its owner: a shape group (``"meshes"``), ``"lights"``,
            ``"cameras"``, ``"animations"`` or ``"film"``.
        owner: the owner's name in that collection (``"cow"``; ``"film"`` for the film).
        owner_kind: what the owner is: ``"mesh"`` (or another shape kind), a registered light type
            (``"point"``, ``"spot"``, ``"directional"``, ``"area"``, ``"environment"``, ``"sh"``),
            ``"camera"``, ``"animation"`` or ``"film"``.
        attr: the attribute holding the tensor on its owner (or on the owner's material):
            ``"roughness_factor"``, ``"K"``.
        shape: the tensor's shape now.
        obj: the owner object itself (a :class:`SceneMesh`, a light, a :class:`Camera`, the :class:`Film`),
            for what a parameter's users need from it (a mesh's ``faces``, a camera's size).

    Example: ``scene.param_info("cameras.views.K")`` gives ``kind="intrinsics", group="cameras",
    owner="views", owner_kind="camera", attr="K", shape=(8, 3, 3)``.
    """

    name: str
    kind: str
    group: str
    owner: str
    owner_kind: str
    attr: str
    shape: Tuple[int, ...]
    obj: Any = field(default=None, repr=False, compare=False)

    @property
    def is_pose(self) -> bool:
        """Whether the parameter is a rigid transform (:data:`POSE_KINDS`)."""
        return self.kind in POSE_KINDS
