"""Readers and writers; foreign conventions are converted here, once."""

from .image import read_image, write_image
from .obj import ObjError, read_obj
from .opensfm import OpenSfmReconstruction, lla_to_topocentric, read_opensfm

__all__ = ["ObjError", "OpenSfmReconstruction", "lla_to_topocentric", "read_image", "read_obj",
           "read_opensfm", "write_image"]
