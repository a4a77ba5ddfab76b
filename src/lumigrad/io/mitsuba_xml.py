"""Mitsuba 3 scene files (``.xml``) into a :class:`lumigrad.Scene`, converted once into lumigrad's conventions.

``lumigrad.io.load("scene.xml")`` calls :func:`read_mitsuba_xml`. What is read (the subset real scenes use):

* **document**: ``<scene version=...>``; ``<default name value>`` and ``$name`` substitution in every
  attribute (``parameters=`` overrides the defaults, as ``mitsuba -D`` does; an undefined ``$name`` is an
  error); ``<include filename>`` (spliced in place; a cycle is an error); ``<ref id>`` (with or without
  ``name=``) to any object with an ``id``, before or after it in the file (a cycle of references is an
  error). Files of version 0.x / 1.x get Mitsuba's upgrade of camelCase names (``toWorld`` -> ``to_world``,
  ``intIOR`` -> ``int_ior``), ``lookAt`` -> ``lookat`` and ``<srgb>`` -> ``<rgb>``.
* **values**: ``<float> <integer> <boolean> <string> <rgb value="r, g, b"> <point> <vector>`` and
  ``<spectrum>`` given inline: a single value (uniform) or ``wavelength:value`` pairs, converted to linear sRGB
  as Mitsuba's RGB variants do (:mod:`lumigrad.io._spectra`: CIE 1931, reflectances under D65). Spectra from
  files (``filename=``) and spectrum plugins (``type="blackbody"`` ...) are refused.
* **transforms** ``<transform name="to_world">`` of ``translate``, ``rotate`` (``axis`` by ``x y z`` or
  ``value``, used as written, not normalised, as Mitsuba does; ``angle`` in degrees, right-handed), ``scale``
  (``value`` or ``x y z``), ``matrix`` (16 values, row-major, or 9 for a 3x3) and ``lookat`` (``origin target
  up``), composed in document order, each new one multiplied on the left (``M = op_n ... op_2 op_1``), as
  Mitsuba does.
* **shapes** into ``scene.meshes`` (named by ``id``; unnamed ones after their file's stem, else their type,
  with ``-1``, ``-2`` ... for repeats), each a :class:`SceneMesh` in its local frame with the shape's
  ``to_world`` as its (differentiable) ``to_world``: ``obj`` and ``ply`` (lumigrad's readers; OBJ texture
  coordinates are flipped as Mitsuba's ``flip_tex_coords=true`` does, PLY ones are kept as stored, as Mitsuba
  does; ``face_normals=true`` splits every face off so that it shades flat; OBJ ``vn`` normals are not read:
  normals are area-weighted; PLY normals are kept), ``rectangle`` (the ``[-1, 1]^2`` quad at ``z = 0``, normal
  +z, Mitsuba's texture coordinates), ``cube`` (``[-1, 1]^3``, Mitsuba's 24 vertices and texture coordinates),
  ``sphere`` (``center``, ``radius``; an icosphere of ``sphere_subdivisions`` splits, 3 by default: 642
  vertices, within 0.3 % of the radius between them), ``disk`` (the unit disk at ``z = 0``, normal +z, a
  fan of ``disk_segments`` triangles), ``cylinder`` (``p0``, ``p1``, ``radius``: Mitsuba's open tube, no caps,
  ``disk_segments`` quads round with their radial normals, texture coordinates ``(phi / 2 pi, z)``) and
  ``serialized`` (mesh ``shape_index`` of Mitsuba's zlib format, :mod:`lumigrad.io.serialized`; unnamed ones
  after the name stored with the mesh). ``flip_normals`` turns the faces round (and negates stored normals).
  A ``shapegroup`` (top level, with an ``id``) is a template: each ``instance`` that references it gets a
  copy of each of its shapes named ``INSTANCE-SHAPE``, its ``to_world`` the instance's times the shape's
  (emitters in a group and nested groups are refused, as Mitsuba refuses them).
* **materials** (``<bsdf>``, inline or by reference, one :class:`Material` per BSDF element, shared by the
  shapes that refer to it) into the glTF metallic-roughness model, roughness ``= sqrt(alpha)`` (``alpha =
  roughness^2``; ``alpha_u, alpha_v`` as ``sqrt(alpha_u alpha_v)``, a rough conductor's or dielectric's anisotropy as
  ``Material.roughness_aspect = sqrt(alpha_v / alpha_u)``, a rough plastic's read as isotropic) and the rough BSDFs'
  ``distribution`` (``beckmann``, Mitsuba's default, or ``ggx``) as ``Material.microfacet``:

  - ``diffuse``: ``reflectance`` (colour or bitmap) -> base colour, metallic 0, roughness 1 and
    ``specular_factor`` 0 (``KHR_materials_specular``: no dielectric coat), so exactly Lambert's
    ``reflectance / pi``, as Mitsuba's ``diffuse`` (a shape without a BSDF gets Mitsuba's default, a
    ``diffuse`` of reflectance 0.5);
  - ``conductor`` / ``roughconductor``: Mitsuba's own model (``Material.conductor_eta`` and ``conductor_k``:
    :mod:`lumigrad.shading.conductor`, the metal's exact Fresnel curve) with the ``eta, k`` given, or the RGB
    ``eta, k`` Mitsuba's RGB variants use for a named ``material`` (:data:`CONDUCTOR_ETA_K`; ``none``, the
    default, is a perfect mirror), and base colour = ``specular_reflectance`` times the reflectance head-on
    ``((eta - 1)^2 + k^2) / ((eta + 1)^2 + k^2)``;
  - ``plastic`` / ``roughplastic``: ``diffuse_reflectance`` -> base colour, metallic 0, ``ior = int_ior /
    ext_ior``, ``Material.plastic = True``: Mitsuba's own model (:mod:`lumigrad.shading.plastic`);
  - ``dielectric`` / ``thindielectric`` / ``roughdielectric``: ``transmission_factor`` 1, metallic 0, ``ior =
    int_ior / ext_ior`` (names such as ``bk7``, ``water``, ``air`` from Mitsuba's table), base colour
    ``specular_transmittance``; a ``thindielectric`` gets ``thin_dielectric=True`` (a sheet: reflection and
    straight transmission, Mitsuba's model);
  - ``principled``: ``base_color``, ``metallic``, ``roughness``, ``eta`` (or ``specular``, converted as
    Mitsuba does) -> ior, ``Material.principled = True``: Mitsuba's own model in its opaque form
    (:mod:`lumigrad.shading.principled`), its ``spec_tint``, ``sheen``, ``sheen_tint``, ``clearcoat``,
    ``clearcoat_gloss`` and ``flatness`` (numbers; a texture is refused) as ``Material.principled_lobes``
    and its ``anisotropic`` as ``Material.roughness_aspect = sqrt(1 - 0.9 anisotropic)`` (the main lobe's widths
    ``alpha / aspect`` along the surface's ``dp/du`` and ``alpha aspect`` across it); with ``spec_trans`` other
    than 0 the glTF model with ``transmission_factor = spec_trans`` instead (also named; a non-metallic, untextured
    ``spec_trans`` 1, the glass of a Blender export, with base colour ``sqrt(base_color)``: Mitsuba tints each
    crossing by it; its ``anisotropic`` the aspect of the transmitting fraction's rough interface);
  - a ``bitmap`` / ``checkerboard`` texture as a rough conductor's or dielectric's ``alpha`` or the
    principled's ``roughness`` / ``metallic``: the material's ``metallic_roughness_texture`` (G ``sqrt(alpha)``
    or roughness, B metallic; the values Mitsuba reads: sRGB-decoded unless ``raw``, an RGB image's
    luminance), not on a plastic (its tables are per material);
  - the smooth ones (``conductor``, ``plastic``, ``dielectric``, ``thindielectric``) get
    ``Material.delta_specular``: their specular lobes are Dirac lobes, which point, spot and directional lights
    never reach (no glint of such a light in a mirror, no caustic through glass, as in Mitsuba's images);
  - ``twosided`` around one of these: the mesh's ``double_sided`` is set;
  - ``normalmap`` around one of these: its material with ``normal_texture`` (the ``normalmap`` bitmap) and the
    shapes' tangents in Mitsuba's frame (:meth:`_Reader.mitsuba_tangents`) and ``Material.mitsuba_normal_map``
    (Mitsuba's ``use_shadowing_function`` and ``flip_invalid_normals``, on by default; one switch off alone is read
    as the shadowing switch, with a note);
  - ``mask`` around one of these: its material with glTF's ``"BLEND"`` alpha = ``opacity`` (a number, default
    0.5, or a texture's values in the base colour texture's alpha channel), seen through with probability
    ``1 - opacity`` on every ray, shadow rays included, as Mitsuba's ``volpath`` renders it (its ``path`` and
    ``direct`` render masks otherwise: noted; :meth:`_Reader.mask`); a mask on a shape that bounds a medium is
    refused;
  - ``<texture type="bitmap">`` for a base colour (PNG / JPEG as stored, sRGB unless ``raw=true``, as
    Mitsuba decodes them; EXR / HDR are linear and are sRGB-encoded once into ``base_color_texture``, which
    lumigrad decodes), ``wrap_mode`` into ``Material.wrap``; ``<texture type="checkerboard">`` (``color0``,
    ``color1``) baked into one repeated period of :data:`CHECKER_TEXELS`^2 texels; a texture's ``to_uv`` (u and v
    only) is applied to the texture coordinates of the shapes that use it (lumigrad's and Mitsuba's coordinates
    are the same); a shape without texture coordinates (sphere, disk, an OBJ without ``vt``) cannot carry a
    texture and is refused.

* **media**: a shape's ``interior`` and ``exterior`` (``<medium type="homogeneous" name="interior">`` inside it,
  or ``<ref name="exterior" id=...>`` to a top-level one) become its material's ``interior`` and ``exterior``
  (:class:`~lumigrad.shading.HomogeneousMedium`, one object per ``<medium>`` element, shared by the references;
  the shape gets a copy of its BSDF's material), and a sensor's medium (a ``<medium>`` or ``<ref>`` inside the
  ``<sensor>``, any name, as Mitsuba reads it) ``scene.medium``, the medium around everything (every sensor of
  the file must then be in the same one). Mitsuba's rule of the tags carries over, with one difference: leaving
  a shape with an interior but no exterior enters vacuum in Mitsuba, ``scene.medium`` in lumigrad (the same
  without a sensor medium; with one, the file is read and the warning names such shapes):
  ``sigma_s = scale sigma_t albedo``, ``sigma_a = scale sigma_t (1 - albedo)`` (Mitsuba 3's defaults
  ``sigma_t`` 1, ``albedo`` 0.75), or ``sigma_a`` and ``sigma_s`` directly (Mitsuba 0.6); the phase function
  ``hg`` (``g``) or ``isotropic`` (the default). The path tracer traces it where the shape's BSDF transmits.

* **emitters** into ``scene.lights`` (named by ``id``, else their type): ``area`` inside a shape (inline or by
  reference) makes that shape an :class:`AreaLight` of its world triangles with ``radiance`` (named after the
  shape; it is not also a mesh, and its BSDF is dropped: named in the warning); ``point`` (``position`` or
  ``to_world``, ``intensity`` -> ``PointLight`` intensity 1 and colour ``intensity``); ``spot``
  (``cutoff_angle``, ``beam_width`` in degrees -> outer / inner angles, ``to_world``: the light shines along its
  local +z; ``falloff="linear"``, Mitsuba's ramp in the angle); ``directional`` (``direction`` or
  ``to_world``'s +z, ``irradiance``); ``envmap`` (``filename`` of an ``.hdr`` / ``.exr``, ``scale``,
  ``to_world``; both use ``u = atan2(d_x, -d_z) / 2 pi``, ``v = acos(d_y) / pi``, but Mitsuba's rows sit on the
  poles and lumigrad's at row centres, so the map is resampled once, bilinearly, into lumigrad's layout and
  world space: :func:`mitsuba_envmap_to_equirect`; then area-averaged to ``env_size``) and ``constant`` (a
  uniform :class:`EnvironmentLight`).
* **sensors** into ``scene.cameras`` (named by ``id``, else ``sensor``): ``perspective`` and ``thinlens``
  (its ``aperture_radius`` and ``focus_distance``, by default the far clip plane, as the camera's thin lens) with ``fov`` and ``fov_axis`` (``x``, ``y``, ``diagonal``, ``smaller``, ``larger``) or
  ``focal_length`` (35 mm equivalent), ``principal_point_offset_x / _y``, ``near_clip``, ``far_clip`` and a
  rigid ``to_world``, with the ``<film>``'s ``width``, ``height`` and crop window. Mitsuba's camera frame looks
  along +z with +y up and +x to the left of the image; lumigrad's is OpenCV's (+x right, +y down), so
  ``world_to_cam = inverse(to_world @ diag(-1, -1, 1, 1))``.
* **settings** into ``scene.metadata`` (a plain dict): ``"version"``, the final ``"parameters"``, the
  ``"integrator"`` (``{"type": ..., "max_depth": ..., ...}``) and per sensor its ``"sampler"``
  (``sample_count`` ...) and ``"film"`` under ``metadata["sensors"][name]``.

**Refused**, with a :class:`MitsubaXmlError` (a ``ValueError``) naming the file, line, element, its type and id:
unknown tags and plugin types (``<volume>``, media other than ``homogeneous``, a medium inside a shape named other
than ``interior`` / ``exterior``, sensors in different media, curve and SDF shapes, ``blendbsdf``, ``bumpmap``,
``projector`` ...), textures for other properties than those above (``eta``, ``alpha_u`` ...), spectra
from files, a DOCTYPE or entity declaration
(checked in the text before parsing and again by the parser: no DTD is ever read, so no entity expansion or
external entity can be used), cyclic references or includes, a camera ``to_world`` with scale, an ``ior``
below 1. Files named in the file (``filename`` of shapes, bitmaps, environment maps and includes) are
resolved against the folder of the file passed in (as Mitsuba's file resolver does; then against the
including file's folder) and must stay inside that folder unless ``trust_paths=True``
(:mod:`lumigrad.io._paths`); a missing one is a :class:`MitsubaXmlError` that is also a
``FileNotFoundError``.

**Not read, and said so** in one :class:`MitsubaXmlWarning` per file: every property a plugin has that is
not listed above (``focus_distance``, ``pixel_format``, ``sample_emitters`` ...), the BSDF of an emitting
shape, an area emitter that no shape uses, the back BSDF of a two-sided BSDF, and what the approximations
drop (a principled's lobes with ``spec_trans``, a rough plastic's anisotropy).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple
from xml.parsers import expat

import numpy as np
import torch

from ..cameras.camera import Camera
from ..cameras.pixel_filter import PixelFilter, as_pixel_filter
from ..scene.lights import AreaLight, DirectionalLight, EnvironmentLight, PointLight, SpotLight
from ..scene.scene import Film, Scene, SceneMesh
from ..shading.material import MIN_CONDUCTOR_REFLECTANCE, Material
from ..shading.medium import HomogeneousMedium
from ..shading.principled import PRINCIPLED_LOBES, ior_from_specular
from .errors import ignored_features
from ._paths import ConfinementError, check_regular_file, confined_path, open_regular_file, short_text
from ._spectra import spectrum_to_rgb

__all__ = ["MitsubaXmlError", "MitsubaXmlWarning", "mitsuba_envmap_to_equirect", "read_mitsuba_xml"]


class MitsubaXmlError(ValueError):
    """A Mitsuba scene file lumigrad cannot read; the message names the file, line and element at fault."""


class MitsubaXmlWarning(UserWarning):
    """Parts of a Mitsuba scene file that lumigrad does not read (one warning per file names them all)."""


class MitsubaXmlMissingFile(MitsubaXmlError, FileNotFoundError):
    """A file named in a Mitsuba scene file does not exist."""


_PROPERTY_TAGS = ("float", "integer", "boolean", "string", "rgb", "spectrum", "point", "vector", "transform")
_OBJECT_TAGS = ("shape", "bsdf", "texture", "emitter", "sensor", "film", "sampler", "integrator", "rfilter",
                "medium", "phase", "volume")
_SHAPES = ("obj", "ply", "serialized", "rectangle", "cube", "sphere", "disk", "cylinder", "shapegroup", "instance")
_BSDFS = ("diffuse", "conductor", "roughconductor", "plastic", "roughplastic", "dielectric", "thindielectric",
          "roughdielectric", "principled", "twosided", "normalmap", "mask")
_EMITTERS = ("area", "point", "spot", "directional", "envmap", "constant")
_SENSORS = ("perspective", "thinlens", "orthographic")
#: Shapes Mitsuba shades with their own normals (not the world winding's).
_ANALYTIC = ("rectangle", "cube", "sphere", "disk", "cylinder")
_MAX_INCLUDE_DEPTH = 32
_MIN_ALPHA_UV = 1e-4  # the least of an anisotropic lobe's widths (Mitsuba's principled clamps its own to it)
#: Texels along each side of one period (2 x 2 cells) of a baked ``checkerboard`` texture.
CHECKER_TEXELS = 256
_MAX_NESTING = 64  # element nesting read (real scenes use fewer than 10; deeper input would recurse far)

#: Mitsuba's named indices of refraction (``int_ior`` / ``ext_ior`` given as a name).
IOR_NAMES = {"vacuum": 1.0, "helium": 1.000036, "hydrogen": 1.000132, "air": 1.000277, "carbon dioxide": 1.00045,
             "water": 1.3330, "acetone": 1.36, "ethanol": 1.361, "carbon tetrachloride": 1.461,
             "glycerol": 1.4729, "benzene": 1.501, "silicone oil": 1.52045, "bromine": 1.661, "water ice": 1.31,
             "fused quartz": 1.458, "pyrex": 1.470, "acrylic glass": 1.49, "polypropylene": 1.49, "bk7": 1.5046,
             "sodium chloride": 1.544, "amber": 1.55, "pet": 1.5750, "diamond": 2.419}

#: The RGB complex index of refraction ``(eta, k)`` of Mitsuba's named conductors (its ``conductor`` ``material``
#: names), as Mitsuba 3's RGB variants derive it from the measured spectra (read from Mitsuba 3.9.1's
#: ``llvm_ad_rgb`` by ``mi.traverse``). ``none`` is Mitsuba's default, ``eta = 0, k = 1``: a perfect mirror.
CONDUCTOR_ETA_K = {
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    "a-C": ((2.94405, 2.22714, 1.96816), (0.88746, 0.79930, 0.81529)),
    "Ag": ((0.15528, 0.11673, 0.13839), (4.82835, 3.12222, 2.14690)),
    "Al": ((1.65750, 0.88040, 0.52124), (9.22381, 6.26950, 4.83700)),
    "AlAs": ((3.60530, 3.23294, 2.21632), (0.00068, 0.00000, 0.00751)),
    "AlSb": ((0.00000, 4.13937, 4.66925), (0.00000, 0.09401, 1.30057)),
    "Au": ((0.14304, 0.37531, 1.44205), (3.98300, 2.38556, 1.60336)),
    "Be": ((4.18501, 3.18503, 2.78406), (3.83547, 3.01012, 2.86899)),
    "Cr": ((4.36967, 2.91651, 1.65490), (5.20655, 4.23131, 3.75470)),
    "CsI": ((2.14490, 1.70232, 1.66243), (0.00000, 0.00000, 0.00000)),
    "Cu": ((0.20101, 0.92375, 1.10222), (3.91326, 2.45305, 2.14209)),
    "Cu2O": ((3.55177, 2.94987, 2.75188), (0.11421, 0.19390, 0.60613)),
    "CuO": ((3.24754, 2.44781, 2.21022), (0.52109, 0.57003, 0.72218)),
    "d-C": ((2.70872, 2.31883, 2.22890), (0.00000, 0.00000, 0.00000)),
    "Hg": ((2.39894, 1.44003, 0.90957), (6.32759, 4.37192, 3.42176)),
    "HgTe": ((4.77904, 3.23120, 2.65990), (1.63161, 1.58081, 1.72929)),
    "Ir": ((3.08630, 2.08219, 1.61791), (5.59215, 4.06709, 3.26731)),
    "K": ((0.06404, 0.04641, 0.03818), (2.10420, 1.34894, 0.91313)),
    "Li": ((0.26579, 0.19562, 0.22095), (3.54015, 2.31112, 1.66861)),
    "MgO": ((2.08958, 1.65072, 1.59488), (0.00000, 0.00000, 0.00000)),
    "Mo": ((4.48397, 3.52513, 2.77631), (4.11144, 3.42083, 3.15061)),
    "Na_palik": ((0.06027, 0.05614, 0.06199), (3.17927, 2.11249, 1.57904)),
    "Nb": ((3.42007, 2.79009, 2.39563), (3.44139, 2.73767, 2.57975)),
    "Ni_palik": ((2.36730, 1.66337, 1.46708), (4.49881, 3.05015, 2.34544)),
    "Rh": ((2.58579, 1.86022, 1.55426), (6.78226, 4.70299, 3.97607)),
    "Se": ((4.05831, 2.84294, 2.82085), (0.75405, 0.63844, 0.52181)),
    "SiC": ((3.17234, 2.52597, 2.47937), (0.00000, 0.00000, 0.00001)),
    "SnTe": ((4.52425, 1.98164, 1.28159), (0.00000, 0.00000, 0.00000)),
    "Ta": ((2.06272, 2.39294, 2.62793), (2.40836, 1.74149, 1.94703)),
    "Te": ((7.39023, 4.48210, 2.63711), (3.25602, 3.52706, 3.29205)),
    "ThF4": ((1.83071, 1.44223, 1.38765), (0.00000, 0.00000, 0.00000)),
    "TiC": ((3.70053, 2.83742, 2.58229), (3.26564, 2.35159, 2.17279)),
    "TiN": ((1.64845, 1.15052, 1.37982), (3.36833, 1.94350, 1.10207)),
    "TiO2": ((3.45661, 2.80174, 2.90517), (0.00011, 0.00000, 0.00065)),
    "VC": ((3.65757, 2.75274, 2.53267), (3.06830, 2.19869, 1.96319)),
    "V_palik": ((4.27758, 3.51295, 2.76107), (3.49130, 2.88945, 3.11152)),
    "VN": ((2.86560, 2.11919, 1.94009), (3.03224, 2.05612, 1.61631)),
    "W": ((4.37082, 3.30025, 2.99841), (3.50064, 2.60487, 2.27323)),
}


# Mitsuba's cube: four corners per face (outward, counter-clockwise as [0, 1, 2], [3, 0, 2]), texture
# coordinates (0, 1), (1, 1), (1, 0), (0, 0) on every face.
_CUBE_FACES = (((1, -1, -1), (1, -1, 1), (-1, -1, 1), (-1, -1, -1)),
               ((1, 1, -1), (-1, 1, -1), (-1, 1, 1), (1, 1, 1)),
               ((1, -1, -1), (1, 1, -1), (1, 1, 1), (1, -1, 1)),
               ((1, -1, 1), (1, 1, 1), (-1, 1, 1), (-1, -1, 1)),
               ((-1, -1, 1), (-1, 1, 1), (-1, 1, -1), (-1, -1, -1)),
               ((1, 1, -1), (1, -1, -1), (-1, -1, -1), (-1, 1, -1)))

_NUMBER_SPLIT = re.compile(r"[\s,]+")
_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z]+)")
_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def read_mitsuba_xml(path: str | os.PathLike, *, parameters: Optional[Dict[str, Any]] = None,
                     sphere_subdivisions: int = 3, disk_segments: int = 64,
                     env_size: Optional[Tuple[int, int]] = (32, 64), dtype: torch.dtype = torch.float32,
                     trust_paths: bool = False) -> Scene:
    """Read a Mitsuba 3 scene file into a :class:`lumigrad.Scene` (see the module docstring for the subset).

    Args:
        path: the ``.xml`` file; files it names are resolved against its folder.
        parameters: values for ``$name`` substitutions; they override the file's ``<default>`` values (as
            ``mitsuba -D name=value`` does).
        sphere_subdivisions: icosphere splits a ``sphere`` shape is tessellated with (``>= 0``).
        disk_segments: triangles of a ``disk`` shape (``>= 3``).
        env_size: ``(H, W)`` environment maps are area-averaged to (``None`` keeps them as stored).
        dtype: floating dtype of every tensor.
        trust_paths: also read files named with absolute paths or outside the file's folder (only for files you
            trust).

    Returns:
        A :class:`Scene` with ``meshes``, ``lights`` and ``cameras``, and the integrator, samplers and films in
        ``scene.metadata``.

    Raises:
        MitsubaXmlError: (a ``ValueError``) malformed XML, a DOCTYPE / entity declaration, an unknown element
            or plugin type, a bad value, a cyclic reference or include; a file named in it that is missing (also
            a ``FileNotFoundError``) or outside its folder (also a :class:`lumigrad.io.ConfinementError`).
    """
    for name, value, lo in (("sphere_subdivisions", sphere_subdivisions, 0), ("disk_segments", disk_segments, 3)):
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            raise ValueError(f"{name} must be an int >= {lo}; got {value!r}")
    if parameters is not None and not isinstance(parameters, dict):
        raise TypeError(f"parameters must be a dict of name -> value; got {type(parameters).__name__}")
    reader = _Reader(Path(path), dict(parameters or {}), sphere_subdivisions, disk_segments, env_size, dtype,
                     trust_paths)
    return reader.read()


class _Props:
    """The properties and nested objects of one plugin element, with what the builder used of them."""

    def __init__(self, reader: "_Reader", elem: ET.Element):
        self.reader, self.elem = reader, elem
        self.values: Dict[str, ET.Element] = {}
        self.objects: List[Tuple[Optional[str], ET.Element, ET.Element]] = []  # (name, target, as written)
        self.used: set = set()
        for child in elem:
            if child.tag in _PROPERTY_TAGS:
                name = child.get("name")
                if not name:
                    raise reader.error(child, f"<{child.tag}> inside {reader.describe(elem)} needs a name")
                if name in self.values:
                    raise reader.error(child, f"property {name!r} is given twice in {reader.describe(elem)}")
                self.values[name] = child
            elif child.tag == "ref":
                self.objects.append((child.get("name"), reader.target(child), child))
            elif child.tag in _OBJECT_TAGS:
                self.objects.append((child.get("name"), child, child))
            else:
                raise reader.error(child, f"unknown element <{child.tag}> inside {reader.describe(elem)}")

    def has(self, name: str) -> bool:
        return name in self.values

    def get(self, name: str) -> Optional[ET.Element]:
        if name in self.values:
            self.used.add(name)
        return self.values.get(name)

    def nested(self, tag: str, name: Optional[str] = None) -> List[ET.Element]:
        """Nested objects of ``tag`` (by ``name`` when given, else all of them), marked used."""
        out = []
        for i, (n, target, _) in enumerate(self.objects):
            if target.tag == tag and (name is None or n == name):
                self.used.add(i)
                out.append(target)
        return out

    def named_object(self, name: str) -> Optional[ET.Element]:
        for i, (n, target, _) in enumerate(self.objects):
            if n == name:
                self.used.add(i)
                return target
        return None

    def number(self, name: str, default=None, kinds=("float", "integer")) -> Optional[float]:
        child = self.get(name)
        if child is None:
            return default
        if child.tag not in kinds:
            raise self.reader.error(child, f"property {name!r} of {self.reader.describe(self.elem)} must be "
                                           f"{' or '.join('<' + k + '>' for k in kinds)}; got <{child.tag}>")
        return self.reader.number(child)

    def integer(self, name: str, default=None) -> Optional[int]:
        child = self.get(name)
        if child is None:
            return default
        value = self.reader.number(child)
        if child.tag not in ("integer", "float") or value != int(value):
            raise self.reader.error(child, f"property {name!r} must be an integer; got "
                                           f"{short_text(child.get('value'))}")
        return int(value)

    def string(self, name: str, default=None) -> Optional[str]:
        child = self.get(name)
        if child is None:
            return default
        if child.tag != "string":
            raise self.reader.error(child, f"property {name!r} of {self.reader.describe(self.elem)} must be a "
                                           f"<string>; got <{child.tag}>")
        return self.reader.attr(child, "value")

    def boolean(self, name: str, default=None) -> Optional[bool]:
        child = self.get(name)
        if child is None:
            return default
        text = self.reader.attr(child, "value").strip().lower()
        if child.tag != "boolean" or text not in ("true", "false", "1", "0"):
            raise self.reader.error(child, f"property {name!r} must be <boolean value=\"true\"> or \"false\"; got "
                                           f"<{child.tag} value={short_text(text)}>")
        return text in ("true", "1")

    def vector(self, name: str, default=None) -> Optional[np.ndarray]:
        child = self.get(name)
        if child is None:
            return None if default is None else np.asarray(default, dtype=np.float64)
        if child.tag not in ("point", "vector", "rgb"):
            raise self.reader.error(child, f"property {name!r} must be a <point> or <vector>; got <{child.tag}>")
        return self.reader.triple(child, default=0.0)

    def transform(self, name: str = "to_world") -> Optional[np.ndarray]:
        child = self.get(name)
        if child is None:
            return None
        if child.tag != "transform":
            raise self.reader.error(child, f"property {name!r} must be a <transform>; got <{child.tag}>")
        return self.reader.transform(child)

    def unused(self) -> List[str]:
        names = [n for n in self.values if n not in self.used]
        names += [n or f"<{t.tag}>" for i, (n, t, _) in enumerate(self.objects) if i not in self.used]
        return names


class _Reader:
    def __init__(self, path: Path, parameters: Dict[str, Any], sphere_subdivisions: int, disk_segments: int,
                 env_size, dtype: torch.dtype, trust_paths: bool):
        self.path, self.root = path, path.parent
        self.overrides = {str(k): str(v) for k, v in parameters.items()}
        self.params: Dict[str, str] = dict(self.overrides)
        self.sphere_subdivisions, self.disk_segments, self.env_size = sphere_subdivisions, disk_segments, env_size
        self.dtype, self.trust_paths = dtype, trust_paths
        self.where: Dict[ET.Element, Tuple[Path, int]] = {}
        self.version_of: Dict[Path, str] = {}
        self.ids: Dict[str, ET.Element] = {}
        self.built: Dict[ET.Element, Any] = {}
        self.building: List[ET.Element] = []
        self.notes: Dict[str, Dict[str, None]] = {}
        self.claimed: Dict[str, set] = {"meshes": set(), "lights": set(), "cameras": set(), "instances": set()}
        self.taken: Dict[str, set] = {"meshes": set(), "lights": set(), "cameras": set(),  # names given out
                                      "instances": set()}
        self.metadata: Dict[str, Any] = {}
        self.uv_transforms: Dict[int, Tuple[torch.Tensor, np.ndarray]] = {}  # id(texels): (texels, to_uv [2, 3])
        self.mitsuba_normal_maps: Dict[int, torch.Tensor] = {}  # id: the normal textures of normalmap BSDFs
        self.sensor_media: Dict[str, Tuple[ET.Element, Optional[HomogeneousMedium]]] = {}  # camera -> its medium
        self.interior_only: List[ET.Element] = []  # shapes with an interior and no exterior
        self.instanced: set = set()  # shapegroups an instance used
        self.obj_normals: set = set()  # OBJ shapes whose file has vertex normals (vn)
        self.file_bytes: Dict[Path, bytes] = {}  # serialized files read (one read for all their meshes)
        self.geometries: Dict[ET.Element, tuple] = {}  # a shapegroup member's geometry (one read for every instance)

    # ------------------------------------------------------------------------------------- messages
    def describe(self, elem: ET.Element) -> str:
        parts = [elem.tag]
        for key in ("type", "id", "name"):
            if elem.get(key) is not None:
                parts.append(f"{key}={short_text(elem.get(key), 40)}")
        return "<" + " ".join(parts) + ">"

    def locate(self, elem: ET.Element) -> str:
        file, line = self.where.get(elem, (self.path, 0))
        return f"{file}:{line}" if line else f"{file}"

    def error(self, elem: ET.Element, message: str, cls=MitsubaXmlError) -> MitsubaXmlError:
        return cls(f"{self.locate(elem)}: {message}")

    def note(self, feature: str, elem: ET.Element) -> None:
        """Record that ``feature`` (at ``elem``) is not read; :meth:`warn` names it once."""
        file, line = self.where.get(elem, (self.path, 0))
        try:
            shown = file.resolve().relative_to(self.root.resolve())
        except ValueError:
            shown = file
        self.notes.setdefault(feature, {})[f"{self.describe(elem)} at {shown}:{line}"] = None

    def attr(self, elem: ET.Element, key: str) -> str:
        value = elem.get(key)
        if value is None:
            raise self.error(elem, f"{self.describe(elem)} needs the attribute {key!r}")
        return value

    # --------------------------------------------------------------------------------- files, parsing
    def resolve(self, elem: ET.Element, name: str, what: str) -> Path:
        """The regular file ``name`` (written in ``elem``) names, looked up as Mitsuba's file resolver does:
        against the main file's folder, then against the folder of the file ``elem`` is in. Either way it must
        stay inside the main file's folder unless ``trust_paths``."""
        source = f"{self.locate(elem)} {self.describe(elem)}"
        here = self.where.get(elem, (self.path, 0))[0].parent.resolve()
        names = [name]
        if here != self.root.resolve() and not Path(name).is_absolute():
            names.append(os.path.join(os.path.relpath(here, self.root.resolve()), name))
        refused, looked = None, []
        for candidate in names:
            try:
                file = confined_path(self.root, candidate, source=source, what=what, trusted=self.trust_paths,
                                     base=MitsubaXmlError)
            except ConfinementError as e:
                refused = refused or e
                continue
            if file.exists():
                return self._regular(file, source, what)
            looked.append(str(file))
        if not looked:
            raise refused
        raise MitsubaXmlMissingFile(f"{source}: {what} {short_text(name)} does not exist (looked for "
                                    f"{' and '.join(looked)})")

    def _regular(self, file: Path, source: str, what: str) -> Path:
        try:
            return check_regular_file(file, source=source, what=what, base=MitsubaXmlError)
        except FileNotFoundError:
            raise MitsubaXmlMissingFile(f"{source}: {what} {file} does not exist") from None

    def parse(self, file: Path, source: str) -> ET.Element:
        """Parse ``file`` into elements (positions recorded); DTDs and entities are refused."""
        try:
            with open_regular_file(file, source=source, what="scene file", base=MitsubaXmlError) as fh:
                data = fh.read()
        except FileNotFoundError:
            raise MitsubaXmlMissingFile(f"{source}: scene file {file} does not exist") from None
        match = _DTD.search(data)
        if match:
            line = data.count(b"\n", 0, match.start()) + 1
            raise MitsubaXmlError(f"{file}:{line}: a <!{match.group(1).decode().upper()}> declaration is refused: "
                                  "Mitsuba scene files need no DTD, and lumigrad reads none (no entity expansion)")
        builder = ET.TreeBuilder()
        parser = expat.ParserCreate()
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)

        def refuse(*_args):
            raise MitsubaXmlError(f"{file}:{parser.CurrentLineNumber}: DTD and entity declarations are refused")

        depth = [0]

        def start(tag, attrs):
            depth[0] += 1
            if depth[0] > _MAX_NESTING:
                raise MitsubaXmlError(f"{file}:{parser.CurrentLineNumber}: elements nested more than {_MAX_NESTING} "
                                      "deep; refused")
            elem = builder.start(tag, attrs)
            self.where[elem] = (file, parser.CurrentLineNumber)

        def end(tag):
            depth[0] -= 1
            builder.end(tag)

        parser.StartDoctypeDeclHandler = refuse
        parser.EntityDeclHandler = refuse
        parser.ExternalEntityRefHandler = refuse
        parser.StartElementHandler = start
        parser.EndElementHandler = end
        try:
            parser.Parse(data, True)
        except expat.ExpatError as e:
            raise MitsubaXmlError(f"{file}:{e.lineno}: not well-formed XML ({expat.errors.messages[e.code]}, "
                                  f"column {e.offset + 1})") from None
        root = builder.close()
        version = root.get("version", "3.0.0")
        self.version_of[file] = version
        if not re.fullmatch(r"\d+(\.\d+){0,2}", version):
            raise self.error(root, f"version {short_text(version)} is not a version number")
        if int(version.split(".")[0]) < 2:
            self._upgrade(root)
        return root

    def _upgrade(self, root: ET.Element) -> None:
        """Mitsuba's upgrade of 0.x / 1.x files: camelCase property names, ``lookAt``, ``<srgb>``."""
        for elem in root.iter():
            if elem.tag == "lookAt":
                elem.tag = "lookat"
            elif elem.tag == "srgb":
                elem.tag = "rgb"
            if elem.tag in _PROPERTY_TAGS and elem.get("name"):
                elem.set("name", _CAMEL.sub(lambda m: "_" + m.group(1), elem.get("name")).lower())

    # ------------------------------------------------------------------------ defaults, includes, ids
    def expand(self, root: ET.Element, file: Path, chain: Tuple[Path, ...]) -> List[ET.Element]:
        """The top-level elements of ``root`` in document order, with includes spliced in, defaults applied and
        ``$name`` substituted."""
        if root.tag != "scene":
            raise self.error(root, f"the root element must be <scene>; got <{root.tag}>")
        out = []
        for child in root:
            self.substitute(child)
            if child.tag == "default":
                name, value = self.attr(child, "name"), self.attr(child, "value")
                self.params.setdefault(name, value)
            elif child.tag == "include":
                target = self.resolve(child, self.attr(child, "filename"), "include")
                key = target.resolve()
                if key in chain:
                    raise self.error(child, f"cyclic <include>: {' -> '.join(p.name for p in chain + (key,))}")
                if len(chain) > _MAX_INCLUDE_DEPTH:
                    raise self.error(child, f"includes nested deeper than {_MAX_INCLUDE_DEPTH}")
                sub = self.parse(target, f"{self.locate(child)} <include>")
                out.extend(self.expand(sub, target, chain + (key,)))
            else:
                out.append(child)
        return out

    def substitute(self, elem: ET.Element) -> None:
        for node in elem.iter():
            for key, value in node.attrib.items():
                if "$" in value:
                    def sub(m, node=node):
                        if m.group(1) not in self.params:
                            raise self.error(node, f"{self.describe(node)} uses ${m.group(1)}, which is not defined "
                                                   "(add <default name=... value=...> before it, or pass "
                                                   "parameters=)")
                        return self.params[m.group(1)]
                    node.set(key, _PARAM.sub(sub, value))

    def index(self, elems: Sequence[ET.Element]) -> None:
        for top in elems:
            for elem in top.iter():
                if elem.tag in _OBJECT_TAGS and elem.get("id") is not None:
                    key = elem.get("id")
                    if key in self.ids:
                        raise self.error(elem, f"id {short_text(key)} is also used at {self.locate(self.ids[key])}")
                    self.ids[key] = elem

    def target(self, ref: ET.Element) -> ET.Element:
        key = self.attr(ref, "id")
        if key not in self.ids:
            raise self.error(ref, f"<ref id={short_text(key)}> names no object of the file")
        return self.ids[key]

    # ------------------------------------------------------------------------------------------ values
    def numbers(self, elem: ET.Element, text: str) -> List[float]:
        parts = [p for p in _NUMBER_SPLIT.split(text.strip()) if p]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise self.error(elem, f"{self.describe(elem)} value {short_text(text)} is not a list of numbers") from None
        if not all(math.isfinite(v) for v in values):
            raise self.error(elem, f"{self.describe(elem)} value {short_text(text)} must be finite")
        return values

    def number(self, elem: ET.Element) -> float:
        values = self.numbers(elem, self.attr(elem, "value"))
        if len(values) != 1:
            raise self.error(elem, f"{self.describe(elem)} needs one number; got {short_text(elem.get('value'))}")
        return values[0]

    def triple(self, elem: ET.Element, default: float) -> np.ndarray:
        """``x y z`` attributes or ``value="x, y, z"`` of a point / vector / axis."""
        if elem.get("value") is not None:
            values = self.numbers(elem, elem.get("value"))
            if len(values) == 1:
                values = values * 3
            if len(values) != 3:
                raise self.error(elem, f"{self.describe(elem)} needs 3 numbers; got {short_text(elem.get('value'))}")
            return np.asarray(values, dtype=np.float64)
        out = []
        for key in "xyz":
            text = elem.get(key)
            values = [default] if text is None else self.numbers(elem, text)
            if len(values) != 1:
                raise self.error(elem, f"{self.describe(elem)} attribute {key} must be one number; got "
                                       f"{short_text(text)}")
            out.append(values[0])
        return np.asarray(out, dtype=np.float64)

    def colour(self, elem: ET.Element, *, reflectance: bool) -> np.ndarray:
        """Linear RGB ``[3]`` of a ``<float>``, ``<rgb>`` or inline ``<spectrum>``."""
        if elem.tag in ("float", "integer"):
            return np.full(3, self.number(elem))
        if elem.tag == "rgb":
            values = self.numbers(elem, self.attr(elem, "value"))
            if len(values) == 1:
                values = values * 3
            if len(values) != 3:
                raise self.error(elem, f"<rgb> needs 3 numbers (\"r, g, b\"); got {short_text(elem.get('value'))}")
            return np.asarray(values, dtype=np.float64)
        if elem.tag == "spectrum":
            if elem.get("filename") is not None or elem.get("type") is not None or len(elem):
                raise self.error(elem, f"{self.describe(elem)}: spectra from files and spectrum plugins are not "
                                       "supported; give an <rgb> or an inline <spectrum "
                                       "value=\"wavelength:value, ...\">")
            text = self.attr(elem, "value")
            if ":" not in text:
                return np.full(3, self.number(elem))
            pairs = [p for p in re.split(r"\s*,\s*|\s+(?=[^:\s]+:)", text.strip()) if p]
            try:
                wl, vals = zip(*[(float(a), float(b)) for a, b in (p.split(":") for p in pairs)])
                return spectrum_to_rgb(wl, vals, reflectance=reflectance)
            except ValueError as e:
                detail = str(e) if "spectrum" in str(e) else "expected \"wavelength:value, ...\""
                raise self.error(elem, f"<spectrum> value {short_text(text)} is not a spectrum ({detail})") from None
        raise self.error(elem, f"{self.describe(elem)} is not a colour: give <rgb>, <float> or <spectrum>")

    def transform(self, elem: ET.Element) -> np.ndarray:
        """The ``[4, 4]`` float64 matrix of a ``<transform>``: its operations composed in document order, each
        multiplied on the left."""
        M = np.eye(4)
        for op in elem:
            tag = op.tag
            T = np.eye(4)
            if tag == "translate":
                T[:3, 3] = self.triple(op, 0.0)
            elif tag == "rotate":
                axis = self.triple(op, 0.0)
                angle = math.radians(self.numbers(op, self.attr(op, "angle"))[0])
                if not axis.any():
                    raise self.error(op, "<rotate> needs a non-zero axis (x, y, z or value)")
                T[:3, :3] = _rotation(axis, angle)  # as written: Mitsuba does not normalise it either
            elif tag == "scale":
                s = self.triple(op, 1.0)
                T[:3, :3] = np.diag(s)
            elif tag == "matrix":
                values = self.numbers(op, self.attr(op, "value"))
                if len(values) == 16:
                    T = np.asarray(values).reshape(4, 4)
                elif len(values) == 9:
                    T[:3, :3] = np.asarray(values).reshape(3, 3)
                else:
                    raise self.error(op, f"<matrix> needs 16 (or 9) numbers, row-major; got {len(values)}")
            elif tag == "lookat":
                origin = np.asarray(self.numbers(op, self.attr(op, "origin")))
                target = np.asarray(self.numbers(op, self.attr(op, "target")))
                up = np.asarray(self.numbers(op, op.get("up"))) if op.get("up") is not None else None
                if origin.shape != (3,) or target.shape != (3,) or (up is not None and up.shape != (3,)):
                    raise self.error(op, "<lookat> origin, target and up need 3 numbers each")
                T = self._look_at(op, origin, target, up)
            else:
                raise self.error(op, f"unknown transform operation <{tag}> (expected translate, rotate, scale, "
                                     "matrix or lookat)")
            M = T @ M
        if not np.isfinite(M).all():
            raise self.error(elem, "the transform has NaN or Inf entries")
        return M

    def _look_at(self, op, origin, target, up) -> np.ndarray:
        d = target - origin
        if np.linalg.norm(d) == 0:
            raise self.error(op, "<lookat> origin and target coincide")
        d = d / np.linalg.norm(d)
        if up is None:
            up = _coordinate_system(d)[0]
        left = np.cross(up, d)
        if np.linalg.norm(left) < 1e-12:
            raise self.error(op, "<lookat> up is parallel to the viewing direction target - origin")
        left = left / np.linalg.norm(left)
        new_up = np.cross(d, left)
        T = np.eye(4)
        T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = left, new_up, d, origin
        return T

    # ------------------------------------------------------------------------------------- the scene
    def read(self) -> Scene:
        root = self.parse(self.path, "read_mitsuba_xml")
        top = self.expand(root, self.path, (self.path.resolve(),))
        self.index(top)
        self.metadata = {"version": self.version_of[self.path], "sensors": {}}
        self.pixel_filters: List[Tuple[ET.Element, PixelFilter]] = []
        scene = Scene()
        # explicit ids claim their names first, so that generated names never take them
        for elem in top:
            group = {"shape": "meshes", "emitter": "lights", "sensor": "cameras"}.get(elem.tag)
            if group == "meshes" and self._emitter_of(elem) is not None:
                group = "lights"
            if group == "meshes" and elem.get("type") in ("shapegroup", "instance"):
                group = {"shapegroup": None, "instance": "instances"}[elem.get("type")]
            if group and elem.get("id") is not None:
                self.claimed[group].add(_clean(elem.get("id")))
        used_area: set = set()
        for elem in top:
            tag = elem.tag
            if tag == "shape" and elem.get("type") == "shapegroup":
                continue  # a template for instances (read when one uses it)
            if tag == "shape" and elem.get("type") == "instance":
                self.instance(elem, scene, used_area)
            elif tag == "shape":
                self.shape(elem, scene, used_area)
            elif tag == "emitter":
                if self.attr(elem, "type") == "area":
                    continue  # a template for shapes (checked when a shape uses it)
                scene.add_light(self.name("lights", elem, self.attr(elem, "type")), self.build(elem, self.emitter))
            elif tag == "sensor":
                name = self.name("cameras", elem, "sensor")
                scene.add_camera(name, self.build(elem, lambda e: self.sensor(e, name)))
            elif tag == "integrator":
                if "integrator" in self.metadata:
                    self.note("a second <integrator> (the first is kept)", elem)
                else:
                    self.metadata["integrator"] = self.record(elem)
            elif tag == "bsdf":
                self.build(elem, self.bsdf)
            elif tag == "texture":
                self.build(elem, self.texture)
            elif tag == "medium":
                if elem.get("id") is None:
                    raise self.error(elem, f"{self.describe(elem)}: a top-level <medium> needs an id (shapes "
                                           "reference it as their interior or exterior, sensors as theirs)")
                continue  # a template for shapes' and sensors' media (checked when one uses it)
            elif tag in ("film", "sampler", "rfilter"):
                if elem.get("id") is None:  # (one with an id is a template a sensor may <ref>)
                    self.note(f"a top-level <{tag}> outside a sensor", elem)
            elif tag in _OBJECT_TAGS:
                raise self.error(elem, f"{self.describe(elem)}: lumigrad does not read <{tag}> (only homogeneous "
                                       "media, as shapes' interiors and exteriors and sensors' media, are: no "
                                       "volumes)")
            else:
                raise self.error(elem, f"unknown element <{tag}> in <scene>")
        for elem in self.ids.values():
            if elem.tag == "emitter" and elem.get("type") == "area" and elem not in used_area:
                self.note("area emitters that no shape uses", elem)
            if elem.tag == "medium" and elem not in self.built:
                self.note("media that no shape uses", elem)
            if elem.tag == "shape" and elem.get("type") == "shapegroup" and elem not in self.instanced:
                self.note("shapegroups that no instance uses", elem)
        scene.medium = self.scene_medium(scene)
        scene.film = Film(pixel_filter=self.film_filter())
        self.metadata["parameters"] = dict(self.params)
        scene.metadata = self.metadata
        self.warn()
        return scene

    def name(self, group: str, elem: ET.Element, fallback: str, prefix: Optional[str] = None) -> str:
        """``elem``'s id (cleaned), or ``fallback`` with ``-1``, ``-2`` ... avoiding every id of the group; with a
        ``prefix`` (an instance's name), ``prefix-id`` or ``prefix-fallback``, made unique the same way."""
        if prefix is not None:
            fallback = f"{prefix}-{_clean(elem.get('id') or fallback)}"
        if elem.get("id") is not None and prefix is None:
            name = _clean(elem.get("id"))
            if name in self.taken[group]:
                raise self.error(elem, f"two {group} are named {name!r} (ids that differ only in characters other "
                                       "than letters, digits, '_' and '-')")
        else:
            base = _clean(fallback)
            name, n = base, 0
            while name in self.taken[group] or name in self.claimed[group]:
                n += 1
                name = f"{base}-{n}"
        self.taken[group].add(name)
        return name

    def build(self, elem: ET.Element, make):
        """``make(elem)`` once per element (objects shared by references are built once); cycles refused."""
        if elem in self.built:
            return self.built[elem]
        if elem in self.building:
            chain = self.building[self.building.index(elem):] + [elem]
            raise self.error(elem, "cyclic <ref>: " + " -> ".join(self.describe(e) for e in chain))
        self.building.append(elem)
        try:
            value = make(elem)
        finally:
            self.building.pop()
        self.built[elem] = value
        return value

    def props(self, elem: ET.Element) -> _Props:
        return _Props(self, elem)

    def done(self, props: _Props) -> None:
        """Name the properties ``props`` has that the builder did not read."""
        for name in props.unused():
            self.note(f"property {name!r} of {props.elem.tag} {props.elem.get('type')!r}", props.elem)

    def record(self, elem: ET.Element) -> Dict[str, Any]:
        """A plain dict of a settings object (integrator, sampler, film, rfilter): its type and values."""
        out: Dict[str, Any] = {"type": elem.get("type")}
        for child in elem:
            if child.tag == "ref":
                child = self.target(child)
            name = child.get("name") or child.tag
            if child.tag in ("float", "integer"):
                value = self.number(child)
                out[name] = int(value) if child.tag == "integer" and value == int(value) else value
            elif child.tag == "boolean":
                out[name] = self.attr(child, "value").strip().lower() in ("true", "1")
            elif child.tag == "string":
                out[name] = self.attr(child, "value")
            elif child.tag in ("rgb", "spectrum"):
                out[name] = self.colour(child, reflectance=False).tolist()
            elif child.tag in ("point", "vector"):
                out[name] = self.triple(child, 0.0).tolist()
            elif child.tag == "transform":
                out[name] = self.transform(child).tolist()
            elif child.tag in _OBJECT_TAGS:
                out[name] = self.record(child)
            else:
                raise self.error(child, f"unknown element <{child.tag}> inside {self.describe(elem)}")
        return out

    # ---------------------------------------------------------------------------------------- shapes
    def _emitter_of(self, elem: ET.Element) -> Optional[ET.Element]:
        for child in elem:
            target = self.ids.get(child.get("id")) if child.tag == "ref" else child
            if target is not None and target.tag == "emitter":
                return target
        return None

    def instance(self, elem: ET.Element, scene: Scene, used_area: set) -> None:
        """Mitsuba's ``instance`` of a ``shapegroup``: a copy of each of the group's shapes, its ``to_world`` the
        instance's times the shape's, named ``instance-shape`` (the instance's id, or ``instance``, ``instance-1``
        ...; the shape's id, or its file stem or type)."""
        p = self.props(elem)
        groups = p.nested("shape")
        if len(groups) != 1 or groups[0].get("type") != "shapegroup":
            raise self.error(elem, f"{self.describe(elem)} needs exactly one shapegroup (a <ref id> to one); got "
                                   f"{', '.join(self.describe(g) for g in groups) or 'none'}")
        group = groups[0]
        parent = p.transform("to_world")
        parent = np.eye(4) if parent is None else parent
        prefix = self.name("instances", elem, "instance")
        gp = self.props(group)
        members = gp.nested("shape")
        if not members:
            raise self.error(group, f"{self.describe(group)} holds no shapes")
        for member in members:
            kind = member.get("type")
            if kind in ("shapegroup", "instance"):
                raise self.error(member, f"{self.describe(member)} inside a shapegroup: nested instancing is not "
                                         "supported (nor by Mitsuba)")
            if self._emitter_of(member) is not None:
                raise self.error(member, f"{self.describe(member)} inside a shapegroup has an emitter: instanced "
                                         "emitters are not supported (nor by Mitsuba)")
            self.shape(member, scene, used_area, parent=parent, prefix=prefix)
        self.instanced.add(group)
        self.done(gp)
        self.done(p)

    def shape(self, elem: ET.Element, scene: Scene, used_area: set, parent: Optional[np.ndarray] = None,
              prefix: Optional[str] = None) -> None:
        """A shape (``parent``, ``prefix``: an instance's transform and name, see :meth:`instance`)."""
        kind = self.attr(elem, "type")
        if kind not in _SHAPES:
            raise self.error(elem, f"{self.describe(elem)}: shape type {short_text(kind)} is not supported (lumigrad "
                                   f"reads {', '.join(_SHAPES)})")
        if kind in ("shapegroup", "instance"):
            raise self.error(elem, f"{self.describe(elem)} must be at the top level of the scene")
        p = self.props(elem)
        if parent is None:
            geometry = self.geometry(elem, kind, p)
        else:  # a shapegroup member: its geometry read once for every instance (and its properties marked read)
            if elem not in self.geometries:
                self.geometries[elem] = (self.geometry(elem, kind, p), set(p.used))
            geometry, used = self.geometries[elem]
            p.used.update(used)
        verts, faces, uv, uv_faces, normals, fallback = geometry
        to_world = p.transform("to_world")
        to_world = np.eye(4) if to_world is None else to_world
        if parent is not None:
            to_world = parent @ to_world
        if p.boolean("flip_normals", False):
            faces = faces[:, [1, 0, 2]]  # (turned round keeping the first edge's line: Mitsuba's dp/du without uv)
            uv_faces = None if uv_faces is None else uv_faces[:, [1, 0, 2]]
            normals = None if normals is None else -normals
        emitters = p.nested("emitter")
        bsdfs = p.nested("bsdf")
        if len(emitters) > 1:
            raise self.error(elem, f"{self.describe(elem)} has {len(emitters)} emitters; a shape has at most one")
        if len(bsdfs) > 1:
            raise self.error(elem, f"{self.describe(elem)} has {len(bsdfs)} BSDFs; a shape has at most one")
        t = lambda a: torch.as_tensor(a, dtype=self.dtype)  # noqa: E731
        if emitters:
            emitter = emitters[0]
            if self.attr(emitter, "type") != "area":
                raise self.error(emitter, f"{self.describe(emitter)} inside a shape must be of type 'area'")
            used_area.add(emitter)
            radiance = self.build(emitter, self.area_radiance)
            if bsdfs:
                self.build(bsdfs[0], self.bsdf)  # checked, then dropped
                self.note("the BSDF of an emitting shape (it becomes an AreaLight only)", elem)
            world = verts @ to_world[:3, :3].T + to_world[:3, 3]
            light = self._make(elem, AreaLight, t(world), torch.as_tensor(faces, dtype=torch.long), t(radiance))
            scene.add_light(self.name("lights", elem, fallback), light)
            self.done(p)
            return
        material, double_sided = self.build(bsdfs[0], self.bsdf) if bsdfs else (self.default_material(), False)
        mirrored = np.linalg.det(to_world[:3, :3]) < 0
        if mirrored and (kind in _ANALYTIC or normals is not None
                         or (elem in self.obj_normals and not p.boolean("face_normals", False))):
            # Mitsuba shades an analytic shape or stored normals with the normals transformed (n M^-1: not flipped
            # by a mirror), where lumigrad takes a face's side from its world winding (flipped): turned back here
            faces = faces[:, [1, 0, 2]]  # (turned round keeping the first edge's line: Mitsuba's dp/du without uv)
            uv_faces = None if uv_faces is None else uv_faces[:, [1, 0, 2]]
        others = [t for n, t, _ in p.objects if t.tag == "medium" and n not in ("interior", "exterior")]
        if others:
            raise self.error(others[0], f"{self.describe(others[0])} inside a shape must be named 'interior' or "
                                        "'exterior'")
        media = {}
        for side in ("interior", "exterior"):
            found = p.nested("medium", side)
            if len(found) > 1:
                raise self.error(found[1], f"{self.describe(elem)} has {len(found)} {side} media; a shape has one")
            if found:
                media[side] = self.build(found[0], self.medium)
        if media:
            if material.alpha_mode != "OPAQUE":
                raise self.error(elem, f"{self.describe(elem)} bounds a medium with a mask (lumigrad's rays through "
                                       "its holes would neither enter nor leave the medium)")
            material = dataclasses.replace(material, **media)
            if "exterior" not in media:
                self.interior_only.append(elem)
        if material.has_textures() and uv is None:
            raise self.error(elem, f"{self.describe(elem)} has no texture coordinates, so its BSDF's texture "
                                   "cannot be applied")
        transforms = [self.uv_transforms.get(id(t), (None, None))[1]
                      for t in (material.base_color_texture, material.normal_texture,
                                material.metallic_roughness_texture) if t is not None]
        if any((a is None) != (b is None) or (a is not None and not np.allclose(a, b))
               for a, b in zip(transforms, transforms[1:])):
            raise self.error(elem, f"{self.describe(elem)}: its material's textures have different to_uv transforms "
                                   "(lumigrad's textures share the shape's texture coordinates)")
        if transforms and transforms[0] is not None:  # the textures' to_uv moves the shape's coordinates
            if material.roughness_aspect is not None and abs(transforms[0][0, 1]) + abs(transforms[0][1, 0]) > 0:
                self.note("an anisotropic lobe with a texture's rotating or shearing to_uv (its frame follows the "
                          "moved texture coordinates; Mitsuba's, the shape's own)", elem)
            uv = uv @ transforms[0][:, :2].T + transforms[0][:, 2]
        tangents = None
        if material.normal_texture is not None and id(material.normal_texture) in self.mitsuba_normal_maps:
            tangents = self.mitsuba_tangents(verts, faces, uv, uv_faces, normals)
            if mirrored:  # a mirroring to_world: lumigrad flips the handedness with the determinant's sign (glTF's
                tangents[:, 3] = -1.0  # rule); Mitsuba's frame stays n x dp/du
        elif getattr(material, "roughness_aspect", None) is not None and kind in ("sphere", "disk"):
            # an anisotropic lobe on an analytic shape tessellated without texture coordinates: Mitsuba's dp/du
            tangents = self.analytic_tangents(kind, verts, p.vector("center", (0.0, 0.0, 0.0)) if kind == "sphere"
                                              else (0.0, 0.0, 0.0))
        mesh = self._make(elem, SceneMesh, t(verts), torch.as_tensor(faces, dtype=torch.long), material,
                          tangents=None if tangents is None else t(tangents),
                          uv=None if uv is None else t(uv),
                          uv_faces=None if uv_faces is None else torch.as_tensor(uv_faces, dtype=torch.long),
                          normals=None if normals is None else t(normals), to_world=t(to_world),
                          double_sided=double_sided)
        scene.add_mesh(self.name("meshes", elem, fallback, prefix), mesh)
        self.done(p)

    def geometry(self, elem: ET.Element, kind: str, p: _Props):
        """``(verts, faces, uv, uv_faces, normals, fallback name)`` of a shape in its local frame (numpy)."""
        uv = uv_faces = normals = None
        if kind in ("obj", "ply"):
            filename = p.string("filename")
            if filename is None:
                raise self.error(elem, f"{self.describe(elem)} needs a <string name=\"filename\">")
            file = self.resolve(elem, filename, f"{kind} filename")
            verts, faces, uv, uv_faces, normals = self._read_mesh(elem, file, kind)
            if kind == "obj" and not p.boolean("flip_tex_coords", True) and uv is not None:
                uv = uv.copy()
                uv[:, 1] = 1.0 - uv[:, 1]
            return (*_flat_if(p.boolean("face_normals", False), verts, faces, uv, uv_faces, normals),
                    Path(filename).stem)
        if kind == "serialized":
            return self.serialized(elem, p)
        if kind == "rectangle":
            verts = np.array([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [1.0, 1.0, 0.0], [-1.0, 1.0, 0.0]])
            return verts, np.array([[0, 1, 2], [0, 2, 3]]), (verts[:, :2] + 1) / 2, None, None, kind
        if kind == "cube":
            verts = np.asarray(_CUBE_FACES, dtype=np.float64).reshape(-1, 3)
            uv = np.tile(np.array([[0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]]), (6, 1))
            faces = np.concatenate([[[4 * k, 4 * k + 1, 4 * k + 2], [4 * k + 3, 4 * k, 4 * k + 2]] for k in range(6)])
            return verts, faces, uv, None, None, kind
        if kind == "sphere":
            from ..geometry import icosphere

            center = p.vector("center", (0.0, 0.0, 0.0))
            radius = p.number("radius", 1.0)
            if radius <= 0:
                raise self.error(elem, f"{self.describe(elem)} radius must be positive; got {radius}")
            unit, faces = icosphere(self.sphere_subdivisions, dtype=torch.float64)
            return center + radius * unit.numpy(), faces.numpy(), None, None, None, kind
        if kind == "cylinder":
            return self.cylinder(elem, p)
        n = self.disk_segments  # disk
        phi = 2 * math.pi * np.arange(n) / n
        verts = np.concatenate([[[0.0, 0.0, 0.0]], np.stack([np.cos(phi), np.sin(phi), np.zeros(n)], -1)])
        faces = np.stack([np.zeros(n, dtype=np.int64), 1 + np.arange(n), 1 + (np.arange(n) + 1) % n], -1)
        return verts, faces, None, None, None, kind

    def cylinder(self, elem: ET.Element, p: _Props):
        """Mitsuba's ``cylinder``: the open tube of ``radius`` (default 1) from ``p0`` (default the origin) to ``p1``
        (default ``(0, 0, 1)``), ``disk_segments`` quads round, outward radial vertex normals, texture coordinates
        ``(phi / 2 pi, z)`` with ``phi`` measured in Mitsuba's frame of the axis (the seam's vertices doubled)."""
        p0 = np.asarray(p.vector("p0", (0.0, 0.0, 0.0)), dtype=np.float64)
        p1 = np.asarray(p.vector("p1", (0.0, 0.0, 1.0)), dtype=np.float64)
        radius = p.number("radius", 1.0)
        axis = p1 - p0
        length = float(np.linalg.norm(axis))
        if radius <= 0 or length == 0:
            raise self.error(elem, f"{self.describe(elem)} needs a positive radius and p0 != p1; got radius {radius}, "
                                   f"|p1 - p0| = {length}")
        from ..shading.warps import local_frame  # Duff et al.'s frame, as Mitsuba's Frame3f: the same seam

        t, b = local_frame(torch.as_tensor(axis / length, dtype=torch.float64))
        x, y = t.numpy(), b.numpy()
        n = self.disk_segments
        phi = 2 * math.pi * np.arange(n + 1) / n
        radial = np.cos(phi)[:, None] * x + np.sin(phi)[:, None] * y  # [n + 1, 3]
        verts = np.concatenate([p0 + radius * radial, p1 + radius * radial])
        normals = np.concatenate([radial, radial])
        k = np.arange(n)
        faces = np.concatenate([np.stack([k, k + 1, n + 2 + k], -1), np.stack([k, n + 2 + k, n + 1 + k], -1)])
        uv = np.concatenate([np.stack([phi / (2 * math.pi), np.zeros(n + 1)], -1),
                             np.stack([phi / (2 * math.pi), np.ones(n + 1)], -1)])
        return verts, faces, uv, None, normals, "cylinder"

    def serialized(self, elem: ET.Element, p: _Props):
        """Mesh ``shape_index`` (default 0) of a ``.serialized`` file (:mod:`lumigrad.io.serialized`); its name
        as stored (or the file's stem) names the shape when it has no id."""
        from .serialized import read_serialized_bytes

        filename = p.string("filename")
        if filename is None:
            raise self.error(elem, f"{self.describe(elem)} needs a <string name=\"filename\">")
        index = p.integer("shape_index", 0)
        if index < 0:
            raise self.error(elem, f"{self.describe(elem)}: shape_index must be >= 0; got {index}")
        file = self.resolve(elem, filename, "serialized filename")
        try:
            if file not in self.file_bytes:  # (a file of many meshes is read once)
                self.file_bytes[file] = file.read_bytes()
            mesh = read_serialized_bytes(self.file_bytes[file], index, dtype=torch.float64, path=file)
        except ValueError as e:
            raise self.error(elem, f"{self.describe(elem)}: {e}") from None
        if mesh.faces.shape[0] == 0:
            raise self.error(elem, f"{self.describe(elem)}: mesh {index} of {file.name} has no faces")
        conv = lambda a: None if a is None else a.numpy()  # noqa: E731
        verts, faces, uv, normals = conv(mesh.verts), conv(mesh.faces), conv(mesh.uv), conv(mesh.normals)
        if normals is not None:  # (Mitsuba normalises them; a zero one would be NaN there: area-weighted here)
            length = np.linalg.norm(normals, axis=-1, keepdims=True)
            if (length == 0).any():
                self.note("stored vertex normals of zero length (all of that mesh's recomputed, area-weighted)",
                          elem)
                normals = None
            else:
                normals = normals / length
        return (*_flat_if(p.boolean("face_normals", False), verts, faces, uv, None, normals),
                _clean(mesh.name) if mesh.name else Path(filename).stem)

    def _read_mesh(self, elem: ET.Element, file: Path, kind: str):
        try:
            if kind == "obj":
                from .obj import read_obj

                verts, faces, uv, uv_faces = read_obj(file, dtype=torch.float64)
                normals = None
                with open(file, "rb") as fh:  # (Mitsuba shades with an OBJ's vn, which lumigrad does not read)
                    if re.search(rb"(^|\n)[ \t]*vn[ \t]", fh.read()):
                        self.obj_normals.add(elem)
            else:
                from .ply import read_ply

                data = read_ply(file, dtype=torch.float64)
                verts, faces, uv, uv_faces, normals = data.verts, data.faces, data.uv, data.uv_faces, data.normals
                if uv is not None:  # Mitsuba keeps a PLY's texture coordinates as stored; lumigrad's reader flips
                    uv = uv.clone()
                    uv[:, 1] = 1.0 - uv[:, 1]
        except ValueError as e:
            raise self.error(elem, f"{self.describe(elem)}: {e}") from None
        if faces.shape[0] == 0:
            raise self.error(elem, f"{self.describe(elem)}: {file.name} has no faces")
        conv = lambda a: None if a is None else a.detach().cpu().numpy()  # noqa: E731
        return conv(verts), conv(faces).astype(np.int64), conv(uv), conv(uv_faces), conv(normals)

    def medium(self, elem: ET.Element) -> HomogeneousMedium:
        """A ``homogeneous`` medium: Mitsuba 3's ``sigma_t`` (default 1), ``albedo`` (default 0.75) and
        ``scale`` (default 1), or Mitsuba 0.6's ``sigma_a`` and ``sigma_s``; the phase function a nested
        ``<phase type="hg">`` (``g``, default 0) or ``isotropic`` (the default)."""
        kind = self.attr(elem, "type")
        if kind != "homogeneous":
            raise self.error(elem, f"{self.describe(elem)}: medium type {short_text(kind)} is not supported "
                                   "(lumigrad reads homogeneous)")
        p = self.props(elem)

        def colour(name, default, reflectance):
            child = p.get(name)
            return np.full(3, default) if child is None else self.colour(child, reflectance=reflectance)

        scale = p.number("scale", 1.0)
        if p.has("sigma_a") or p.has("sigma_s"):
            if p.has("sigma_t") or p.has("albedo"):
                raise self.error(elem, f"{self.describe(elem)}: give sigma_t and albedo, or sigma_a and sigma_s, "
                                       "not both")
            sigma_a, sigma_s = colour("sigma_a", 0.0, False) * scale, colour("sigma_s", 0.0, False) * scale
        else:
            sigma_t, albedo = colour("sigma_t", 1.0, False) * scale, colour("albedo", 0.75, True)
            sigma_a, sigma_s = sigma_t * (1.0 - albedo), sigma_t * albedo
        phases = p.nested("phase")
        g = 0.0
        if len(phases) > 1:
            raise self.error(elem, f"{self.describe(elem)} has {len(phases)} phase functions; a medium has one")
        if phases:
            phase = self.props(phases[0])
            phase_kind = self.attr(phases[0], "type")
            if phase_kind not in ("hg", "isotropic"):
                raise self.error(phases[0], f"{self.describe(phases[0])}: phase type {short_text(phase_kind)} is "
                                            "not supported (lumigrad reads hg and isotropic)")
            g = phase.number("g", 0.0) if phase_kind == "hg" else 0.0
            self.done(phase)
        self.done(p)
        t = lambda a: torch.as_tensor(a, dtype=self.dtype)  # noqa: E731
        return self._make(elem, HomogeneousMedium, t(sigma_a), t(sigma_s), g=t(g))

    def _make(self, elem: ET.Element, make, *args, **kwargs):
        """Build a lumigrad object; its own ValueError becomes a MitsubaXmlError naming the element."""
        try:
            return make(*args, **kwargs)
        except MitsubaXmlError:
            raise
        except ValueError as e:
            raise self.error(elem, f"{self.describe(elem)}: {e}") from None

    # -------------------------------------------------------------------------------------- materials
    def default_material(self) -> Material:
        return self.material(base=np.full(3, 0.5), metallic=0.0, roughness=1.0, specular=0.0)  # Mitsuba's diffuse

    def material(self, *, base, metallic, roughness, texture=None, wrap="repeat", ior=1.5,
                 transmission=0.0, specular=1.0, microfacet="ggx", thin=False, plastic=False,
                 principled=False, principled_lobes=None, conductor=None, delta_specular=False,
                 aspect=None) -> Material:
        """A material; ``metallic`` and ``roughness`` are numbers or :class:`_FloatTexture` s (then the material's
        ``metallic_roughness_texture`` holds them, glTF's channels: G roughness, B metallic); ``conductor`` a
        conductor's ``(eta, k)`` or None; ``principled_lobes`` a principled's 6 other lobes or None;
        ``delta_specular`` a smooth BSDF's (``Material.delta_specular``); ``aspect`` an anisotropic lobe's
        (``Material.roughness_aspect``) or None."""
        t = lambda a: torch.as_tensor(a, dtype=self.dtype)  # noqa: E731
        mr, mr_wrap = self.metallic_roughness(metallic, roughness)
        if mr is not None:
            if texture is not None and wrap != mr_wrap:
                raise self.error(self.building[-1], f"{self.describe(self.building[-1])}: its textures' wrap_modes "
                                                    "differ (lumigrad's material addresses every texture one way)")
            wrap = mr_wrap
        factor = lambda v: 1.0 if isinstance(v, _FloatTexture) else v  # noqa: E731
        return Material(base_color_factor=t(np.concatenate([np.asarray(base, dtype=np.float64), [1.0]])),
                        metallic_factor=t(factor(metallic)), roughness_factor=t(factor(roughness)),
                        base_color_texture=texture, metallic_roughness_texture=mr,
                        ior=t(ior), transmission_factor=t(transmission), specular_factor=t(specular), wrap=wrap,
                        microfacet=microfacet, thin_dielectric=thin, plastic=plastic, principled=principled,
                        principled_lobes=None if principled_lobes is None else t(principled_lobes),
                        conductor_eta=None if conductor is None else t(conductor[0]),
                        conductor_k=None if conductor is None else t(conductor[1]), delta_specular=delta_specular,
                        roughness_aspect=None if aspect is None else t(aspect))

    def metallic_roughness(self, metallic, roughness) -> Tuple[Optional[torch.Tensor], str]:
        """glTF's ``metallic_roughness_texture [H, W, 3]`` (linear; G roughness, B metallic, 1 where that value is
        a number, its factor then) of textured ``metallic`` / ``roughness``, or None; with both textured, at the
        larger one's size (the other resampled bilinearly, noted) and one ``to_uv``."""
        textures = [v for v in (roughness, metallic) if isinstance(v, _FloatTexture)]
        if not textures:
            return None, "repeat"
        elem = self.building[-1]
        if len(textures) == 2:
            a, b = textures
            if (a.to_uv is None) != (b.to_uv is None) or (a.to_uv is not None and not np.allclose(a.to_uv, b.to_uv)):
                raise self.error(elem, f"{self.describe(elem)}: its roughness and metallic textures have different "
                                       "to_uv transforms (lumigrad's textures share the shape's texture coordinates)")
            if a.wrap != b.wrap:
                raise self.error(elem, f"{self.describe(elem)}: its roughness and metallic textures' wrap_modes differ")
        size = max((tuple(x.values.shape) for x in textures), key=lambda hw: hw[0] * hw[1])
        channels = []
        for value in (roughness, metallic):
            if not isinstance(value, _FloatTexture):
                channels.append(torch.ones(size, dtype=torch.float64))
                continue
            v = value.values
            if tuple(v.shape) != size:
                self.note("roughness and metallic textures of different sizes (the smaller resampled bilinearly)",
                          elem)
                v = torch.nn.functional.interpolate(v[None, None], size=size, mode="bilinear",
                                                    align_corners=False)[0, 0]
            channels.append(v)
        mr = torch.stack([torch.zeros(size, dtype=torch.float64), *channels], -1).to(self.dtype).contiguous()
        if textures[0].to_uv is not None:
            self.uv_transforms[id(mr)] = (mr, textures[0].to_uv)
        return mr, textures[0].wrap

    def float_texture(self, p: _Props, name: str) -> Optional["_FloatTexture"]:
        """A float property given as a ``bitmap`` / ``checkerboard`` texture: its values as Mitsuba reads them
        (sRGB-decoded unless ``raw``; an RGB image's luminance, as Mitsuba's ``eval_1``), or None."""
        from ..shading.image_formation import srgb_decode

        tex_elem = p.named_object(name)
        if tex_elem is None:
            return None
        if tex_elem.tag != "texture":
            raise self.error(tex_elem, f"{name} must be a number or a <texture>; got <{tex_elem.tag}>")
        encoded, wrap, to_uv = self.build(tex_elem, self.texture)
        rgb = srgb_decode(encoded.double())
        values = rgb @ torch.tensor([0.212671, 0.715160, 0.072169], dtype=torch.float64)
        return _FloatTexture(values.contiguous(), wrap, to_uv)

    def bsdf(self, elem: ET.Element) -> Tuple[Material, bool]:
        kind = self.attr(elem, "type")
        if kind not in _BSDFS:
            raise self.error(elem, f"{self.describe(elem)}: BSDF type {short_text(kind)} is not supported (lumigrad "
                                   f"reads {', '.join(_BSDFS)})")
        p = self.props(elem)
        if kind == "twosided":
            inner = p.nested("bsdf")
            if not inner:
                raise self.error(elem, "a twosided BSDF needs a nested <bsdf>")
            if len(inner) > 1:
                self.note("the back BSDF of a twosided BSDF (the front one is used on both sides)", elem)
            material, _ = self.build(inner[0], self.bsdf)
            self.done(p)
            return material, True
        if kind == "normalmap":
            return self.normal_map(elem, p)
        if kind == "mask":
            return self.mask(elem, p)
        make = lambda **kw: self._make(elem, self.material, **kw)  # noqa: E731
        if kind == "diffuse":
            base, tex, wrap = self.base_colour(p, "reflectance", 0.5)
            material = make(base=base, texture=tex, wrap=wrap, metallic=0.0, roughness=1.0, specular=0.0)
        elif kind in ("conductor", "roughconductor"):
            base, tex, wrap = self.base_colour(p, "specular_reflectance", 1.0)
            eta, k = self.conductor_eta_k(elem, p)
            head_on = ((eta - 1) ** 2 + k ** 2) / ((eta + 1) ** 2 + k ** 2)  # (the base colour: s times it)
            dark = head_on < MIN_CONDUCTOR_REFLECTANCE
            if dark.any():  # (eta 1, k 0: no interface, black in Mitsuba; a mirror's curve times 0 renders it so)
                self.note("a conductor channel of eta near 1 and k near 0, reflecting below 1e-4 head-on (read as "
                          "black: exactly Mitsuba's at eta 1, k 0; near it, its reflection at grazing angles is lost)",
                          elem)
                head_on, eta, k = np.where(dark, 0.0, head_on), np.where(dark, 0.0, eta), np.where(dark, 1.0, k)
            material = make(base=base * head_on, texture=tex, wrap=wrap,
                            metallic=1.0, roughness=self.roughness(p, True) if kind == "roughconductor" else 0.0,
                            microfacet=self.microfacet(p) if kind == "roughconductor" else "ggx",
                            conductor=(eta, k), delta_specular=kind == "conductor",
                            aspect=self.aspect(p) if kind == "roughconductor" else None)
        elif kind in ("plastic", "roughplastic"):
            base, tex, wrap = self.base_colour(p, "diffuse_reflectance", 0.5)
            roughness = self.roughness(p) if kind == "roughplastic" else 0.0
            if isinstance(roughness, _FloatTexture):
                raise self.error(elem, f"{self.describe(elem)}: a textured alpha is not supported on a plastic "
                                       "(Material.plastic's internal-scattering tables are per material)")
            material = make(base=base, texture=tex, wrap=wrap, metallic=0.0, roughness=roughness,
                            ior=self.ior(elem, p, "polypropylene"),
                            microfacet=self.microfacet(p) if kind == "roughplastic" else "ggx", plastic=True,
                            delta_specular=kind == "plastic")
            if p.has("nonlinear") and p.boolean("nonlinear", False):
                self.note("a plastic's nonlinear=true (read as Mitsuba's default, linear)", elem)
        elif kind in ("dielectric", "thindielectric", "roughdielectric"):
            base, tex, wrap = self.base_colour(p, "specular_transmittance", 1.0)
            material = make(base=base, texture=tex, wrap=wrap, metallic=0.0, transmission=1.0,
                            roughness=self.roughness(p, True) if kind == "roughdielectric" else 0.0,
                            ior=self.ior(elem, p, "bk7"),
                            microfacet=self.microfacet(p) if kind == "roughdielectric" else "ggx",
                            thin=kind == "thindielectric", delta_specular=kind != "roughdielectric",
                            aspect=self.aspect(p) if kind == "roughdielectric" else None)
        else:  # principled
            base, tex, wrap = self.base_colour(p, "base_color", 0.5)
            values = {}
            for name, default in (("metallic", 0.0), ("roughness", 0.5)):
                textured = self.float_texture(p, name)
                values[name] = textured if textured is not None else self.scalar(p, name, default)
            values["spec_trans"] = self.scalar(p, "spec_trans", 0.0)
            if p.has("eta") and p.has("specular"):
                raise self.error(elem, f"{self.describe(elem)} sets both eta and specular (Mitsuba takes one)")
            if p.has("specular"):  # (Mitsuba's eta of a specular weight: normal-incidence reflectance 0.08 specular)
                specular = self.scalar(p, "specular", 0.5)
                if not 0.0 <= specular < 12.5:
                    raise self.error(elem, f"{self.describe(elem)} specular must be in [0, 12.5); got {specular}")
                values["eta"] = ior_from_specular(specular)
            else:
                values["eta"] = self.scalar(p, "eta", 1.5)
            if values["eta"] < 1.0:
                raise self.error(elem, f"{self.describe(elem)} eta must be >= 1; got {values['eta']}")
            transmits = values["spec_trans"] != 0.0
            aspect = None  # (with spec_trans, the aspect of the transmitting fraction's rough interface)
            if p.has("anisotropic") or p.named_object("anisotropic") is not None:
                anisotropic = self.scalar(p, "anisotropic", 0.0)  # (a texture refused, naming it)
                if not 0.0 <= anisotropic <= 1.0:
                    raise self.error(elem, f"{self.describe(elem)} anisotropic must lie in [0, 1]; got {anisotropic}")
                aspect = math.sqrt(1.0 - 0.9 * anisotropic) if anisotropic > 0.0 else None
            lobes = None
            if not transmits:  # the opaque model's other lobes (Material.principled_lobes), numbers only
                for name in PRINCIPLED_LOBES:
                    if p.named_object(name) is not None:
                        raise self.error(elem, f"{self.describe(elem)}: a textured {name} is not supported (a number "
                                               "per material)")
                read = [self.scalar(p, name, 0.0) for name in PRINCIPLED_LOBES]
                if any(not 0.0 <= v <= 1.0 for v in read):
                    raise self.error(elem, f"{self.describe(elem)}: {', '.join(PRINCIPLED_LOBES)} must lie in [0, 1]; "
                                           f"got {read}")
                named = dict(zip(PRINCIPLED_LOBES, read))
                if any(named[k] != 0.0 for k in ("spec_tint", "sheen", "clearcoat", "flatness")):
                    lobes = read
            for name in list(p.values) + [n for n, _, _ in p.objects if n]:
                if name in ("diff_trans", "main_specular") or (
                        transmits and name in PRINCIPLED_LOBES):
                    p.get(name)
                    p.named_object(name)
                    self.note(f"principled {name} (not modelled{' with spec_trans' if name in PRINCIPLED_LOBES else ''})",
                              elem)
            if transmits and values["spec_trans"] == 1.0 and isinstance(values["metallic"], float) and \
                    values["metallic"] == 0.0 and tex is None:
                # Mitsuba's glass (a Blender export's transmission 1): its lobes are the rough dielectric's, each
                # crossing tinted by sqrt(base_color); the glTF model tints each by the base colour
                base = np.sqrt(np.clip(base, 0.0, None))
                self.note("principled spec_trans 1 (read as the glTF model's transmission_factor 1 with base colour "
                          "sqrt(base_color), the tint Mitsuba gives each crossing)", elem)
            elif transmits:  # (the glTF model's transmission stands in for its specular transmission lobe)
                self.note("principled spec_trans (read as the glTF model's transmission_factor, not Mitsuba's "
                          "principled lobes)", elem)
            material = make(base=base, texture=tex, wrap=wrap, metallic=values["metallic"],
                            roughness=values["roughness"], transmission=values["spec_trans"], ior=values["eta"],
                            principled=not transmits, principled_lobes=lobes, aspect=aspect)
        self.done(p)
        return material, False

    def normal_map(self, elem: ET.Element, p: _Props) -> Tuple[Material, bool]:
        """Mitsuba's ``normalmap`` around one BSDF: that BSDF's material with ``normal_texture``, the ``normalmap``
        bitmap's values as Mitsuba reads them (as stored with ``raw=true``, sRGB-decoded otherwise), scale 1.
        Mitsuba turns its shading frame to ``2 c - 1`` in the frame ``(dp/du, n x dp/du, n)`` of the shading normal,
        whatever the texture coordinates' orientation; the shapes that use it get tangents of that frame
        (:meth:`mitsuba_tangents`: ``dp/du`` with handedness ``w = +1``) instead of glTF's, whose sign follows the
        layout."""
        from ..shading.image_formation import srgb_decode

        inner = p.nested("bsdf")
        if len(inner) != 1:
            raise self.error(elem, f"{self.describe(elem)} needs one nested <bsdf>; got {len(inner)}")
        tex_elem = p.named_object("normalmap")
        if tex_elem is None or tex_elem.tag != "texture" or self.attr(tex_elem, "type") != "bitmap":
            raise self.error(elem, f"{self.describe(elem)} needs a <texture type=\"bitmap\" name=\"normalmap\">")
        encoded, wrap, to_uv = self.build(tex_elem, self.texture)
        normals = srgb_decode(encoded.double()).clamp(0.0, 1.0).to(self.dtype)
        self.mitsuba_normal_maps[id(normals)] = normals  # (held: the id stays its)
        if to_uv is not None:
            self.uv_transforms[id(normals)] = (normals, to_uv)
        # Mitsuba's defaults: grazing light shadowed by the bent facets, a normal facing away from the viewer flipped
        shadowing = p.boolean("use_shadowing_function", True)
        flipping = p.boolean("flip_invalid_normals", True)
        if shadowing != flipping:
            self.note(f"a normal map's use_shadowing_function={str(shadowing).lower()} with flip_invalid_normals="
                      f"{str(flipping).lower()} (both read as {str(shadowing).lower()})", elem)
        material, double_sided = self.build(inner[0], self.bsdf)
        if (material.base_color_texture is not None or material.metallic_roughness_texture is not None) \
                and material.wrap != wrap:
            self.note("a normal map's wrap_mode other than its material's other textures' (theirs is used)", elem)
            wrap = material.wrap
        self.done(p)
        return dataclasses.replace(material, normal_texture=normals, normal_scale=torch.tensor(1.0, dtype=self.dtype),
                                   wrap=wrap, mitsuba_normal_map=shadowing), double_sided

    def mask(self, elem: ET.Element, p: _Props) -> Tuple[Material, bool]:
        """Mitsuba's ``mask`` around one BSDF: that BSDF's material with glTF's ``"BLEND"`` alpha, ``opacity``
        (default 0.5; a texture's values as Mitsuba reads them, in the base colour texture's alpha channel, its
        ``wrap_mode`` the material's). Both renderers then see through it with probability ``1 - opacity`` (the
        path tracer stochastically, on every ray, shadow rays included; the raster by compositing): Mitsuba's
        ``volpath`` renders it so. Its ``path`` and ``direct`` integrators do not (their shadow rays stop at a
        mask whatever its opacity, and a masked surface lit by an area light comes out darker too), so a file
        rendered with them differs where masks are."""
        inner = p.nested("bsdf")
        if len(inner) != 1:
            raise self.error(elem, f"{self.describe(elem)} needs one nested <bsdf>; got {len(inner)}")
        opacity = self.float_texture(p, "opacity")
        if opacity is None:
            value = self.scalar(p, "opacity", 0.5)
            if not 0.0 <= value <= 1.0:
                raise self.error(elem, f"{self.describe(elem)} opacity must be in [0, 1]; got {value}")
        material, double_sided = self.build(inner[0], self.bsdf)
        self.done(p)
        if material.alpha_mode != "OPAQUE":
            raise self.error(elem, f"{self.describe(elem)}: a mask around a mask is not supported (lumigrad's "
                                   "material has one alpha)")
        self.note("a mask (read as glTF's BLEND alpha: seen through on every ray, shadow rays included, as "
                  "Mitsuba's volpath renders it; its path and direct integrators render masks otherwise)", elem)
        if opacity is None:
            if value >= 1.0:
                return material, double_sided
            factor = material.base_color_factor.clone()
            factor[3] = value
            return dataclasses.replace(material, base_color_factor=factor, alpha_mode="BLEND"), double_sided
        texture = self.with_alpha(material, opacity)
        return dataclasses.replace(material, base_color_texture=texture, alpha_mode="BLEND",
                                   wrap=opacity.wrap), double_sided

    def with_alpha(self, material: Material, opacity: "_FloatTexture") -> torch.Tensor:
        """``material``'s base colour texture ``[H, W, 4]`` with ``opacity``'s values as its alpha (a white one
        where the material has none; textures of different sizes both resampled bilinearly to the larger height
        and the larger width)."""
        elem = self.building[-1]
        if material.has_textures() and material.wrap != opacity.wrap:
            raise self.error(elem, f"{self.describe(elem)}: its opacity texture's wrap_mode differs from its BSDF's "
                                   "textures' (lumigrad's material addresses every texture one way)")
        alpha = opacity.values.clamp(0.0, 1.0)
        rgb = material.base_color_texture
        if rgb is None:
            rgb = torch.ones(*alpha.shape, 3, dtype=torch.float64)
        else:
            to_uv = self.uv_transforms.get(id(rgb), (None, None))[1]
            if (to_uv is None) != (opacity.to_uv is None) or (to_uv is not None and not np.allclose(to_uv,
                                                                                                    opacity.to_uv)):
                raise self.error(elem, f"{self.describe(elem)}: its opacity and colour textures have different "
                                       "to_uv transforms (lumigrad's textures share the shape's texture coordinates)")
            rgb = rgb[..., :3].double()
            size = (max(rgb.shape[0], alpha.shape[0]), max(rgb.shape[1], alpha.shape[1]))
            if tuple(rgb.shape[:2]) != size or tuple(alpha.shape) != size:
                self.note("opacity and colour textures of different sizes (resampled bilinearly to the larger height "
                          "and width)", elem)
                resize = lambda x: torch.nn.functional.interpolate(  # noqa: E731
                    x.permute(2, 0, 1)[None], size=size, mode="bilinear", align_corners=False)[0].permute(1, 2, 0)
                rgb, alpha = resize(rgb), resize(alpha[..., None])[..., 0]
        texture = torch.cat([rgb, alpha[..., None]], -1).to(self.dtype).contiguous()
        if opacity.to_uv is not None:
            self.uv_transforms[id(texture)] = (texture, opacity.to_uv)
        return texture

    @staticmethod
    def analytic_tangents(kind: str, verts: np.ndarray, center) -> np.ndarray:
        """``[V, 4]`` Mitsuba's ``dp/du`` of an analytic ``sphere`` (about its local z axis: ``(-y, x, 0)`` from the
        centre, ``u = phi / 2 pi``) or ``disk`` (radial, ``u = r``) at the vertices of its tessellation, handedness 1.
        Both are linear in the point, so interpolated inside a triangle they are the analytic shape's at the
        interpolated point; 0 at the sphere's poles and the disk's centre (no direction, as Mitsuba's)."""
        r = verts - np.asarray(center, dtype=np.float64)
        d = np.stack([-r[:, 1], r[:, 0], np.zeros(len(r))], -1) if kind == "sphere" else r
        return np.concatenate([d, np.ones((len(d), 1))], -1)

    @staticmethod
    def mitsuba_tangents(verts, faces, uv, uv_faces, normals) -> np.ndarray:
        """``[V, 4]`` tangents of Mitsuba's normal-map frame: ``dp/du`` (the uv layout's, averaged at the vertices,
        orthogonal to the shading normal) with handedness ``+1``, so that lumigrad's bitangent ``N x T`` is
        Mitsuba's ``n x dp/du`` on every face, mirrored texture coordinates included."""
        from ..mesh import vertex_normals
        from ..shading.tangents import vertex_tangents

        v = torch.as_tensor(verts, dtype=torch.float64)
        f = torch.as_tensor(faces, dtype=torch.long)
        tc = torch.as_tensor(uv, dtype=torch.float64)
        tf = f if uv_faces is None else torch.as_tensor(uv_faces, dtype=torch.long)
        n = vertex_normals(v, f) if normals is None else torch.as_tensor(normals, dtype=torch.float64)
        corners = vertex_tangents(v, f, tc, tf, n[f])[..., :3]  # [F, 3, 3]
        t = torch.zeros_like(v).index_add(0, f.reshape(-1), corners.reshape(-1, 3))
        t = t - (t * n).sum(-1, keepdim=True) * n
        t = t / torch.linalg.vector_norm(t, dim=-1, keepdim=True).clamp_min(1e-30)
        return torch.cat([t, torch.ones_like(t[:, :1])], -1).numpy()

    def scalar(self, p: _Props, name: str, default: float) -> float:
        if p.named_object(name) is not None:
            raise self.error(p.elem, f"{self.describe(p.elem)}: a texture for {name!r} is not supported (lumigrad "
                                     "reads textured base colours, alpha, roughness and metallic)")
        return float(p.number(name, default))

    def microfacet(self, p: _Props) -> str:
        """A rough BSDF's ``distribution``: ``beckmann`` (Mitsuba's default) or ``ggx``."""
        value = p.string("distribution", "beckmann")
        if value not in ("beckmann", "ggx"):
            raise self.error(p.elem, f"{self.describe(p.elem)} distribution must be 'beckmann' or 'ggx'; got "
                                     f"{short_text(value)}")
        return value

    def roughness(self, p: _Props, anisotropic_lobes: bool = False):
        """A rough BSDF's roughness ``sqrt(alpha)`` (lumigrad's ``alpha = roughness^2``): a number, or a
        :class:`_FloatTexture` of ``sqrt(alpha)`` per texel for a textured ``alpha``. ``alpha_u, alpha_v`` give
        ``alpha = sqrt(alpha_u alpha_v)`` (each at least 1e-4 where they differ): the mean width of an anisotropic
        lobe (:meth:`aspect`) where the model has them (``anisotropic_lobes``), else an isotropic stand-in (noted)."""
        au_av = self.alphas_uv(p)
        textured = self.float_texture(p, "alpha")
        if textured is not None:
            if au_av is not None:
                raise self.error(p.elem, f"{self.describe(p.elem)} sets alpha and alpha_u / alpha_v")
            self.note("a textured alpha (its square root interpolated between texels, where Mitsuba interpolates "
                      "alpha)", p.elem)
            return _FloatTexture(textured.values.clamp(0.0, 1.0).sqrt(), textured.wrap, textured.to_uv)
        if au_av is not None:
            au, av = au_av
            if au != av and not anisotropic_lobes:
                self.note("anisotropic roughness (read as sqrt(alpha_u alpha_v))", p.elem)
            alpha = math.sqrt(au * av)
        else:
            alpha = self.scalar(p, "alpha", 0.1)
        if alpha < 0:
            raise self.error(p.elem, f"{self.describe(p.elem)} alpha must be >= 0; got {alpha}")
        if anisotropic_lobes and au_av is not None and math.sqrt(alpha) > 1.0:
            self.note("anisotropic alpha_u, alpha_v whose geometric mean is above 1 (read as 1, the aspect kept)",
                      p.elem)
        return min(math.sqrt(alpha), 1.0)

    def alphas_uv(self, p: _Props) -> Optional[Tuple[float, float]]:
        """A rough BSDF's ``(alpha_u, alpha_v)`` (numbers, Mitsuba's defaults 0.1; each at least 1e-4 where they
        differ, Mitsuba's least width), or None where neither is given."""
        if not any(p.has(n) or p.named_object(n) is not None for n in ("alpha_u", "alpha_v")):
            return None
        au, av = self.scalar(p, "alpha_u", 0.1), self.scalar(p, "alpha_v", 0.1)
        if au < 0 or av < 0:
            raise self.error(p.elem, f"{self.describe(p.elem)} alpha_u and alpha_v must be >= 0; got {au}, {av}")
        return (au, av) if au == av else (max(au, _MIN_ALPHA_UV), max(av, _MIN_ALPHA_UV))

    def aspect(self, p: _Props) -> Optional[float]:
        """``Material.roughness_aspect`` of a rough conductor or dielectric: ``sqrt(alpha_v / alpha_u)`` where they
        differ, else None (isotropic)."""
        au_av = self.alphas_uv(p)
        if au_av is None or au_av[0] == au_av[1]:
            return None
        return math.sqrt(au_av[1] / au_av[0])

    def ior(self, elem: ET.Element, p: _Props, interior: str) -> float:
        values = []
        for name, default in (("int_ior", interior), ("ext_ior", "air")):
            child = p.get(name)
            if child is None:
                values.append(IOR_NAMES[default])
            elif child.tag == "string":
                key = self.attr(child, "value").strip().lower()
                if key not in IOR_NAMES:
                    raise self.error(child, f"{name} {short_text(key)} is not a known material (known: "
                                            f"{', '.join(sorted(IOR_NAMES))})")
                values.append(IOR_NAMES[key])
            elif child.tag in ("float", "integer"):
                values.append(self.number(child))
            else:
                raise self.error(child, f"{name} must be a <float> or a <string> material name; got <{child.tag}>")
        if values[1] <= 0 or values[0] / values[1] < 1.0:
            raise self.error(elem, f"{self.describe(elem)}: int_ior / ext_ior = {values[0]} / {values[1]} is below 1; "
                                   "lumigrad's materials need an ior >= 1")
        return values[0] / values[1]

    def conductor_eta_k(self, elem: ET.Element, p: _Props) -> Tuple[np.ndarray, np.ndarray]:
        """The conductor's ``(eta [3], k [3])``: given (Mitsuba's defaults ``eta`` 0, ``k`` 1 for the one not
        given), or of its named ``material`` (:data:`CONDUCTOR_ETA_K`; ``none`` by default)."""
        if p.has("eta") or p.has("k"):
            if p.named_object("eta") is not None or p.named_object("k") is not None:
                raise self.error(elem, "textured eta / k are not supported")
            if p.has("material"):
                raise self.error(elem, f"{self.describe(elem)} sets both a material and eta / k (Mitsuba takes one)")
            eta = self.colour(p.get("eta"), reflectance=False) if p.has("eta") else np.zeros(3)
            k = self.colour(p.get("k"), reflectance=False) if p.has("k") else np.ones(3)
            return eta, k
        name = p.string("material", "none")
        if name not in CONDUCTOR_ETA_K:
            raise self.error(elem, f"{self.describe(elem)}: conductor material {short_text(name)} is not known (known: "
                                   f"{', '.join(CONDUCTOR_ETA_K)})")
        eta, k = CONDUCTOR_ETA_K[name]
        return np.asarray(eta, dtype=np.float64), np.asarray(k, dtype=np.float64)

    def base_colour(self, p: _Props, name: str, default: float):
        """``(rgb [3], texture or None, wrap)`` of a colour property that may be a ``bitmap`` or ``checkerboard``
        texture; a texture's ``to_uv`` is kept in ``self.uv_transforms`` for the shapes that use it."""
        tex_elem = p.named_object(name)
        if tex_elem is not None:
            if tex_elem.tag != "texture":
                raise self.error(tex_elem, f"{name} must be a colour or a <texture>; got <{tex_elem.tag}>")
            texels, wrap, to_uv = self.build(tex_elem, self.texture)
            if to_uv is not None:
                self.uv_transforms[id(texels)] = (texels, to_uv)
            return np.ones(3), texels, wrap
        child = p.get(name)
        if child is None:
            return np.full(3, float(default)), None, "repeat"
        return self.colour(child, reflectance=True), None, "repeat"

    def uv_transform(self, elem: ET.Element, p: _Props) -> Optional[np.ndarray]:
        """A texture's ``to_uv`` as the ``[2, 3]`` affine map of texture coordinates Mitsuba takes from it (the
        ``x, y`` rows and the translation column of the 4 x 4 matrix), None for the identity; a ``to_uv`` that
        mixes in ``z`` is refused."""
        M = p.transform("to_uv")
        if M is None or np.allclose(M, np.eye(4)):
            return None
        if not (np.allclose(M[:2, 2], 0.0) and np.allclose(M[2:, :2], 0.0) and np.allclose(M[3], [0, 0, 0, 1])):
            raise self.error(elem, f"{self.describe(elem)}: to_uv must map texture coordinates (u, v) only; its "
                                   "matrix mixes in z")
        return M[:2][:, [0, 1, 3]].copy()

    def texture(self, elem: ET.Element) -> Tuple[torch.Tensor, str, Optional[np.ndarray]]:
        """``(texels [H, W, 3] sRGB-encoded, wrap, to_uv [2, 3] or None)`` of a ``bitmap`` or ``checkerboard``."""
        kind = self.attr(elem, "type")
        if kind not in ("bitmap", "checkerboard"):
            raise self.error(elem, f"{self.describe(elem)}: texture type {short_text(kind)} is not supported (lumigrad "
                                   "reads bitmap and checkerboard)")
        p = self.props(elem)
        to_uv = self.uv_transform(elem, p)
        if kind == "checkerboard":
            return self.checkerboard(elem, p), "repeat", to_uv
        filename = p.string("filename")
        if filename is None:
            raise self.error(elem, f"{self.describe(elem)} needs a <string name=\"filename\">")
        file = self.resolve(elem, filename, "bitmap filename")
        raw = p.boolean("raw", False)
        wrap = {"repeat": "repeat", "mirror": "mirror", "clamp": "clamp"}.get(p.string("wrap_mode", "repeat"))
        if wrap is None:
            raise self.error(elem, "wrap_mode must be repeat, mirror or clamp")
        p.get("filter_type")
        suffix = file.suffix.lower()
        source = f"{self.locate(elem)} {self.describe(elem)}"
        try:
            if suffix in (".exr", ".hdr"):
                from .exr import read_exr
                from .hdr import read_hdr

                texels, linear = (read_exr if suffix == ".exr" else read_hdr)(file), True
            else:
                from .image import decode_image

                with open_regular_file(file, source=source, what="bitmap", base=MitsubaXmlError) as fh:
                    texels, linear = torch.from_numpy(decode_image(fh, f"{source}: {file.name}")), raw
        except MitsubaXmlError:
            raise
        except ValueError as e:
            raise self.error(elem, f"{self.describe(elem)}: {e}") from None
        texels = texels.to(torch.float64)
        texels = texels[..., :3] if texels.shape[-1] >= 3 else texels[..., :1].expand(-1, -1, 3)
        if linear:  # lumigrad's base colour textures are sRGB-encoded (sample_material decodes them)
            from ..shading.image_formation import srgb_encode

            texels = srgb_encode(texels)
        self.done(p)
        return texels.to(self.dtype).contiguous(), wrap, to_uv

    def checkerboard(self, elem: ET.Element, p: _Props) -> torch.Tensor:
        """Mitsuba's ``checkerboard`` (``color0`` where the fractional parts of ``u`` and ``v`` are both above or
        both at most 0.5, ``color1`` elsewhere; 0.4 and 0.2 by default) as one period of :data:`CHECKER_TEXELS`^2
        sRGB-encoded texels, repeated: exact but for the bilinear filter's one-texel blend at cell borders."""
        from ..shading.image_formation import srgb_encode

        colours = []
        for name, default in (("color0", 0.4), ("color1", 0.2)):
            if p.named_object(name) is not None:
                raise self.error(p.named_object(name), f"{self.describe(elem)}: {name} must be a colour (a nested "
                                                       "texture is not supported)")
            child = p.get(name)
            colours.append(np.full(3, default) if child is None else self.colour(child, reflectance=True))
        self.done(p)
        half = (np.arange(CHECKER_TEXELS) + 0.5) / CHECKER_TEXELS > 0.5
        same = half[:, None] == half[None, :]  # [row (v), column (u)]
        texels = np.where(same[..., None], colours[0], colours[1])
        return srgb_encode(torch.as_tensor(texels, dtype=torch.float64)).to(self.dtype).contiguous()

    # -------------------------------------------------------------------------------------- emitters
    def area_radiance(self, elem: ET.Element) -> np.ndarray:
        p = self.props(elem)
        radiance = self.emission(p, "radiance")
        self.done(p)
        return radiance

    def emission(self, p: _Props, name: str) -> np.ndarray:
        if p.named_object(name) is not None:
            raise self.error(p.elem, f"{self.describe(p.elem)}: a textured {name} is not supported")
        child = p.get(name)
        value = np.ones(3) if child is None else self.colour(child, reflectance=False)
        if (value < 0).any():
            raise self.error(p.elem, f"{self.describe(p.elem)} {name} must be non-negative; got {value.tolist()}")
        return value

    def emitter(self, elem: ET.Element):
        kind = self.attr(elem, "type")
        if kind not in _EMITTERS:
            raise self.error(elem, f"{self.describe(elem)}: emitter type {short_text(kind)} is not supported (lumigrad "
                                   f"reads {', '.join(_EMITTERS)})")
        p = self.props(elem)
        t = lambda a: torch.as_tensor(np.array(a, dtype=np.float64), dtype=self.dtype)  # noqa: E731  (a copy)
        to_world = p.transform("to_world")
        M = np.eye(4) if to_world is None else to_world
        if kind == "point":
            position = p.vector("position")
            if position is None:
                position = M[:3, 3]
            light = self._make(elem, PointLight, t(position), t(1.0), t(self.emission(p, "intensity")))
        elif kind == "spot":
            cutoff = p.number("cutoff_angle", 20.0)
            beam = p.number("beam_width", cutoff * 0.75)
            if not (0.0 < cutoff <= 90.0 and 0.0 <= beam <= cutoff):
                raise self.error(elem, f"{self.describe(elem)} needs 0 < beam_width <= cutoff_angle <= 90 degrees; got "
                                       f"beam_width={beam}, cutoff_angle={cutoff}")
            direction = M[:3, 2] / max(np.linalg.norm(M[:3, 2]), 1e-300)
            light = self._make(elem, SpotLight, t(M[:3, 3]), t(direction), t(1.0), t(self.emission(p, "intensity")),
                               t(math.radians(beam)), t(math.radians(cutoff)), falloff="linear")
        elif kind == "directional":
            direction = p.vector("direction")
            if direction is None:
                direction = M[:3, 2]
            if np.linalg.norm(direction) == 0:
                raise self.error(elem, f"{self.describe(elem)} direction must be non-zero")
            light = self._make(elem, DirectionalLight, t(direction / np.linalg.norm(direction)), t(1.0),
                               t(self.emission(p, "irradiance")))
        elif kind == "constant":
            radiance = self.emission(p, "radiance")
            texels = np.broadcast_to(radiance, (8, 16, 3))
            light = self._make(elem, EnvironmentLight, t(texels))
        elif kind == "envmap":
            light = self.envmap(elem, p, M if to_world is not None else None)
        else:
            raise self.error(elem, f"{self.describe(elem)}: an area emitter must be inside a <shape>")
        self.done(p)
        return light

    def envmap(self, elem: ET.Element, p: _Props, to_world: Optional[np.ndarray]) -> EnvironmentLight:
        from ..shading.envmap import check_env_size
        from .environment import read_environment

        filename = p.string("filename")
        if filename is None:
            raise self.error(elem, f"{self.describe(elem)} needs a <string name=\"filename\">")
        file = self.resolve(elem, filename, "envmap filename")
        if file.suffix.lower() not in (".hdr", ".exr"):
            raise self.error(elem, f"{self.describe(elem)}: environment maps must be .hdr or .exr; got {file.name}")
        scale = p.number("scale", 1.0)
        R = np.eye(3) if to_world is None else to_world[:3, :3]
        if not np.allclose(R @ R.T, np.eye(3), atol=1e-5) or np.linalg.det(R) < 0:
            raise self.error(elem, f"{self.describe(elem)}: an environment map's to_world must be a rotation")
        size = None if self.env_size is None else self._make(elem, check_env_size, self.env_size, "env_size")
        stored = self._make(elem, read_environment, file, size=None).texels
        texels = mitsuba_envmap_to_equirect(stored.to(torch.float64), torch.from_numpy(R))
        if size is not None and tuple(texels.shape[:2]) != tuple(size):  # as read_environment resizes
            texels = torch.nn.functional.interpolate(texels.permute(2, 0, 1)[None], size=tuple(size),
                                                     mode="area")[0].permute(1, 2, 0).contiguous()
        return self._make(elem, EnvironmentLight, texels.to(self.dtype), scale=torch.tensor(scale, dtype=self.dtype))

    # ---------------------------------------------------------------------------------------- sensors
    def sensor(self, elem: ET.Element, name: str) -> Camera:
        kind = self.attr(elem, "type")
        if kind not in _SENSORS:
            raise self.error(elem, f"{self.describe(elem)}: sensor type {short_text(kind)} is not supported (lumigrad "
                                   f"reads {', '.join(_SENSORS)})")
        p = self.props(elem)
        lens = {}
        if kind == "thinlens":  # Mitsuba requires the radius; the focal plane defaults to the far clip plane
            if not p.has("aperture_radius"):
                raise self.error(elem, f"{self.describe(elem)} needs a <float name=\"aperture_radius\">, as Mitsuba "
                                       f"requires")
            lens = dict(aperture_radius=p.number("aperture_radius"),
                        focus_distance=p.number("focus_distance", p.number("far_clip", 1e4)))
        p.get("focus_distance")  # meaningless for a pinhole
        media = p.nested("medium")
        if len(media) > 1:
            raise self.error(media[1], f"{self.describe(elem)} has {len(media)} media; a sensor is in one")
        self.sensor_media[name] = (elem, self.build(media[0], self.medium) if media else None)
        films = p.nested("film")
        film = films[0] if films else None
        fp = self.props(film) if film is not None else None
        width = fp.integer("width", 768) if fp else 768
        height = fp.integer("height", 576) if fp else 576
        if width <= 0 or height <= 0:
            raise self.error(film, f"film width and height must be positive; got {width}x{height}")
        crop = (fp.integer("crop_offset_x", 0), fp.integer("crop_offset_y", 0), fp.integer("crop_width", width),
                fp.integer("crop_height", height)) if fp else (0, 0, width, height)
        if not (0 <= crop[0] and 0 <= crop[1] and crop[2] > 0 and crop[3] > 0 and crop[0] + crop[2] <= width
                and crop[1] + crop[3] <= height):
            raise self.error(film, f"the film's crop window {crop} does not fit in {width}x{height}")
        aspect = width / height
        to_world = p.transform("to_world")
        to_world = np.eye(4) if to_world is None else to_world
        if kind == "orthographic":
            # Mitsuba's orthographic camera sees camera-space x in [-1, 1] and y in [-1 / aspect, 1 / aspect] across
            # the film, scaled by its to_world's scale: fx = W / (2 sx), fy = W / (2 sy) pixels per world unit.
            scales = np.linalg.norm(to_world[:3, :3], axis=0)
            if not (scales > 0).all():
                raise self.error(elem, f"{self.describe(elem)}: the camera's to_world scales an axis to 0")
            fx, fy = width / (2 * scales[0]), width / (2 * scales[1])
            K = np.array([[fx, 0.0, width / 2 - crop[0]], [0.0, fy, height / 2 - crop[1]], [0.0, 0.0, 1.0]])
            to_world = to_world.copy()
            to_world[:3, :3] = to_world[:3, :3] / scales
        else:
            K = self.perspective_K(elem, p, width, height, crop)
        R = to_world[:3, :3]
        if not np.allclose(R.T @ R, np.eye(3), atol=1e-4) or np.linalg.det(R) < 0:
            raise self.error(elem, f"{self.describe(elem)}: the camera's to_world must be a rotation and a translation "
                                   "(no scale or mirroring), as Mitsuba requires")
        cam_to_world = to_world @ np.diag([-1.0, -1.0, 1.0, 1.0])  # Mitsuba x left, y up -> OpenCV x right, y down
        world_to_cam = np.eye(4)
        world_to_cam[:3, :3] = R_wc = cam_to_world[:3, :3].T
        world_to_cam[:3, 3] = -R_wc @ cam_to_world[:3, 3]
        near, far = p.number("near_clip", 0.01), p.number("far_clip", 1e4)
        t = lambda a: torch.as_tensor(a, dtype=self.dtype)  # noqa: E731
        camera = self._make(elem, Camera, t(K), t(world_to_cam), crop[2], crop[3], near=near, far=far,
                            projection="orthographic" if kind == "orthographic" else "perspective",
                            **{key: t(value) for key, value in lens.items()})
        return self.sensor_settings(elem, p, kind, name, film, fp, camera)

    def perspective_K(self, elem: ET.Element, p: _Props, width: int, height: int, crop) -> np.ndarray:
        """``K`` of a perspective sensor from its ``fov`` (``fov_axis``) or ``focal_length``, principal point
        offsets and the film's crop window."""
        aspect = width / height
        if p.has("fov") and p.has("focal_length"):
            raise self.error(elem, "give either fov or focal_length, not both")
        if p.has("fov"):
            fov = p.number("fov")
            axis = p.string("fov_axis", "x").lower()
            if axis == "smaller":
                axis = "y" if aspect > 1 else "x"
            elif axis == "larger":
                axis = "x" if aspect > 1 else "y"
        else:
            text = p.string("focal_length", "50mm")
            try:
                focal = float(text[:-2] if text.endswith("mm") else text)
            except ValueError:
                raise self.error(elem, f"focal_length {short_text(text)} must look like '50mm'") from None
            fov, axis = 2 * math.degrees(math.atan(math.hypot(36, 24) / (2 * focal))), "diagonal"
        half = math.tan(math.radians(fov) / 2)
        if axis == "x":
            half_x = half
        elif axis == "y":
            half_x = half * aspect
        elif axis == "diagonal":
            half_x = half / math.sqrt(1 + 1 / aspect ** 2)
        else:
            raise self.error(elem, f"fov_axis must be x, y, diagonal, smaller or larger; got {short_text(axis)}")
        if not (0 < fov < 180 and half_x > 0 and math.isfinite(half_x)):
            raise self.error(elem, f"{self.describe(elem)} needs a field of view in (0, 180) degrees; got {fov}")
        f = (width / 2) / half_x
        off_x, off_y = p.number("principal_point_offset_x", 0.0), p.number("principal_point_offset_y", 0.0)
        return np.array([[f, 0.0, width / 2 - off_x * width - crop[0]], [0.0, f, height / 2 - off_y * height - crop[1]],
                         [0.0, 0.0, 1.0]])

    def sensor_settings(self, elem: ET.Element, p: _Props, kind: str, name: str, film, fp, camera: Camera) -> Camera:
        """Record the sensor's sampler, film and pixel filter in the scene's metadata; return ``camera``."""
        settings: Dict[str, Any] = {"type": kind}
        for sampler in p.nested("sampler"):
            settings["sampler"] = self.record(sampler)
        if film is not None:
            settings["film"] = self.record(film)
            if fp.values.get("sample_border") is not None and fp.boolean("sample_border", False):
                self.note("a film's sample_border (lumigrad's camera rays start on the film)", film)
            for key in fp.values:
                fp.get(key)  # recorded
            rfilters = fp.nested("rfilter")
            if len(rfilters) > 1:
                raise self.error(rfilters[1], f"{self.describe(film)} has {len(rfilters)} rfilters; a film has one")
            self.pixel_filters.append((elem, self.pixel_filter(rfilters[0]) if rfilters else PixelFilter("gaussian")))
        else:
            self.pixel_filters.append((elem, PixelFilter("gaussian")))  # Mitsuba's default film's
        self.metadata["sensors"][name] = settings
        self.done(p)
        return camera

    def pixel_filter(self, elem: ET.Element) -> PixelFilter:
        """The :class:`PixelFilter` of an ``<rfilter>`` (its Mitsuba plugin name and properties)."""
        try:
            return as_pixel_filter(self.record(elem), "rfilter")
        except (TypeError, ValueError) as exc:
            raise self.error(elem, f"{self.describe(elem)}: {exc}") from None

    def film_filter(self) -> PixelFilter:
        """The scene film's pixel filter: the first sensor's (Mitsuba's default, ``gaussian``, without a sensor)."""
        if not self.pixel_filters:
            return PixelFilter("gaussian")
        first = self.pixel_filters[0][1]
        for elem, other in self.pixel_filters[1:]:
            if other != first:
                self.note("sensors whose films filter differently (the scene's film takes the first sensor's "
                          "filter)", elem)
        return first

    def scene_medium(self, scene: Scene):
        """The sensors' medium (``scene.medium``), one for all of them, or None; notes the shapes whose exterior
        differs from Mitsuba's vacuum because of it."""
        sensors = list(self.sensor_media.values())
        medium = sensors[0][1] if sensors else None
        for elem, other in sensors:
            if other is not medium:
                raise self.error(elem, f"{self.describe(elem)}: the file's sensors are in different media; lumigrad "
                                       "renders every camera in one medium (Scene.medium)")
        if medium is not None:
            for elem in self.interior_only:
                self.note("the vacuum Mitsuba enters on leaving a shape with an interior but no exterior (lumigrad "
                          "enters the sensor's medium, Scene.medium: give the shape an exterior)", elem)
        return medium

    # ---------------------------------------------------------------------------------------- warnings
    def warn(self) -> None:
        parts = []
        parts += ignored_features(self.notes)
        if parts:
            warnings.warn(f"{self.path}: lumigrad ignores {'; '.join(parts)}", MitsubaXmlWarning, stacklevel=4)


@dataclasses.dataclass
class _FloatTexture:
    """A float property's texture: ``values [H, W]`` (float64, as Mitsuba reads them), ``wrap``, ``to_uv``."""

    values: torch.Tensor
    wrap: str
    to_uv: Optional[np.ndarray]


def _flat_if(flat: bool, verts, faces, uv, uv_faces, normals):
    """``(verts, faces, uv, uv_faces, normals)``, with ``flat`` (Mitsuba's ``face_normals``) each triangle's
    corners its own vertices and no vertex normals: flat shading."""
    if not flat:
        return verts, faces, uv, uv_faces, normals
    flat_verts = verts[faces].reshape(-1, 3)
    if uv is not None:
        uv = uv[uv_faces if uv_faces is not None else faces].reshape(-1, 2)
    return flat_verts, np.arange(flat_verts.shape[0]).reshape(-1, 3), uv, None, None


def _clean(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in str(name)) or "unnamed"


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Right-handed rotation by ``angle`` radians about ``axis`` (Rodrigues; a rotation for a unit ``axis``)."""
    x, y, z = axis
    c, s = math.cos(angle), math.sin(angle)
    K = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return c * np.eye(3) + s * K + (1 - c) * np.outer(axis, axis)


def _coordinate_system(n: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Two unit vectors orthogonal to the unit ``n`` (Duff et al. 2017), as Mitsuba picks a missing lookat up."""
    sign = math.copysign(1.0, n[2])
    a = -1.0 / (sign + n[2])
    b = n[0] * n[1] * a
    return (np.array([1 + sign * n[0] * n[0] * a, sign * b, -sign * n[0]]),
            np.array([b, sign + n[1] * n[1] * a, -n[1]]))


def mitsuba_envmap_to_equirect(texels: torch.Tensor, R: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Resample a Mitsuba ``envmap`` bitmap into a lumigrad equirectangular map of the same size, in world space.

    Both map a direction ``d`` (in the map's frame) to ``u = atan2(d_x, -d_z) / 2 pi`` and ``v = acos(d_y) / pi``,
    and both centre column ``j`` at ``u = (j + 0.5) / W``; but Mitsuba puts its first and last rows *on* the
    poles (row ``i`` at ``v = i / (H - 1)``, bilinear in between), while lumigrad centres row ``i`` at ``v = (i +
    0.5) / H``. Texel ``(i, j)`` of the result is Mitsuba's radiance in the world direction of its centre:
    Mitsuba's bitmap sampled bilinearly (wrapping in ``u``) at the local direction ``R^T d`` (Mitsuba looks a
    world direction up at ``to_world^-1 d``). The result matches Mitsuba exactly at texel centres; in between,
    lumigrad's bilinear lookup interpolates once more (exact for maps linear across rows, e.g. gradients).

    Args:
        texels: ``[H, W, C]`` the bitmap as stored (row 0 at the top: +y).
        R: ``[3, 3]`` the envmap's ``to_world`` rotation (local to world); ``None`` for the identity.

    Example: a map whose row ``i`` holds ``i`` becomes rows ``(i + 0.5) (H - 1) / H``; a 90 degree turn about +y
    moves every column ``j`` to ``j - W / 4`` (mod ``W``).
    """
    H, W = texels.shape[:2]
    f64 = torch.float64
    v = (torch.arange(H, dtype=f64) + 0.5) / H
    u = (torch.arange(W, dtype=f64) + 0.5) / W
    theta, phi = torch.meshgrid(math.pi * v, 2 * math.pi * u, indexing="ij")
    d = torch.stack([theta.sin() * phi.sin(), theta.cos(), -theta.sin() * phi.cos()], -1)
    if R is not None:
        d = d @ R.to(f64)  # row vectors: (R^T d)^T = d^T R
    x, y, z = d.unbind(-1)
    lu = torch.remainder(torch.atan2(x, -z) / (2 * math.pi), 1.0)
    lv = torch.acos(y.clamp(-1.0, 1.0)) / math.pi
    px = lu * W - 0.5  # column centres, wrapping
    py = (lv * (H - 1)).clamp(0, H - 1)  # rows on the poles
    x0, y0 = torch.floor(px), torch.floor(py).clamp(max=max(H - 2, 0))
    fx, fy = (px - x0)[..., None], (py - y0)[..., None]
    x0 = x0.long() % W
    x1 = (x0 + 1) % W
    y0 = y0.long()
    y1 = (y0 + 1).clamp(max=H - 1)
    t = texels.to(f64)
    top = t[y0, x0] * (1 - fx) + t[y0, x1] * fx
    bottom = t[y1, x0] * (1 - fx) + t[y1, x1] * fx
    return (top * (1 - fy) + bottom * fy).to(texels.dtype)
