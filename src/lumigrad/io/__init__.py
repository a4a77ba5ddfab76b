"""Readers and writers; foreign conventions are converted here, once. ``load`` / ``save`` pick the format.

Files named inside a file (OBJ ``mtllib`` and textures, glTF URIs, NeRF ``file_path``, COLMAP image names, Mitsuba
``filename`` and ``<include>``) are
read only from inside its folder; every reader takes ``trust_paths=True`` as the opt-in for files you trust,
and refusals are :class:`ConfinementError` (a ``ValueError``).
"""

from ._paths import ConfinementError
from .colmap import ColmapImage, ColmapReconstruction, read_colmap, write_colmap
from .environment import read_environment
from .dataset import ImageDataset, read_dataset, read_depth_maps, stack_cameras
from .exr import read_exr, write_exr
from .gltf import GltfError, read_gltf
from .gltf_writer import write_gltf
from .gltf_animation_writer import write_gltf_animation
from .hdr import read_hdr, write_hdr
from .image import preview, read_image, write_image
from .video import frames_to_uint8, read_video, write_frames, write_strip, write_video
from .nerf import NerfTransforms, read_nerf_transforms, write_nerf_transforms
from .errors import MtlError, ObjError
from .mitsuba_xml import MitsubaXmlError, MitsubaXmlWarning, read_mitsuba_xml
from .mitsuba_settings import mitsuba_render_settings
from .mesh_data import MeshData
from .mtl import read_mtl, write_mtl
from .obj import ObjData, read_mesh, read_obj, read_obj_with_materials, write_obj
from .opensfm import OpenSfmReconstruction, lla_to_topocentric, read_opensfm
from .photo_stream import PhotoStream
from .ply import PlyError, PlyMesh, read_ply, write_ply
from .serialized import SerializedError, SerializedMesh, read_serialized, write_serialized, write_serialized_shapes
from .pytorch3d import camera_from_pytorch3d, camera_to_pytorch3d
from .registry import formats, load, register_format, save

from . import deprecated as _deprecated

_deprecated.attach()

__all__ = ["frames_to_uint8", "read_video", "write_frames", "write_strip", "write_video", "ConfinementError", "MeshData", "read_environment", "read_mesh", "MtlError", "ObjData", "read_mtl", "read_obj_with_materials", "write_mtl", "ImageDataset", "MitsubaXmlError", "MitsubaXmlWarning", "read_mitsuba_xml", "mitsuba_render_settings", "read_dataset", "read_depth_maps", "stack_cameras", "ColmapImage", "GltfError", "ColmapReconstruction", "NerfTransforms", "ObjError", "OpenSfmReconstruction",
           "PhotoStream", "PlyError", "PlyMesh",
           "camera_from_pytorch3d", "camera_to_pytorch3d", "formats", "load", "register_format", "save", "lla_to_topocentric", "read_colmap", "read_exr", "read_gltf", "read_hdr",
           "preview", "read_image", "read_nerf_transforms", "read_obj", "read_opensfm", "read_ply", "write_colmap", "write_exr", "write_gltf", "write_gltf_animation",
           "write_hdr", "write_image", "write_nerf_transforms", "write_obj", "write_ply", "SerializedError",
           "SerializedMesh", "read_serialized", "write_serialized", "write_serialized_shapes"]
