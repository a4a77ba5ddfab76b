"""Readers and writers; foreign conventions are converted here, once."""

from .image import read_image, write_image
from .obj import ObjError, read_obj

__all__ = ["ObjError", "read_image", "read_obj", "write_image"]
