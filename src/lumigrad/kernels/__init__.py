"""Compiled kernels (NVIDIA Warp, CPU and CUDA from one source) behind torch-tensor wrappers.

Nothing outside this package imports ``warp``.
"""
