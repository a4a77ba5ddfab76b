"""Shared fixtures and helpers: small scenes, finite differences, failure images."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

import lumigrad as lg

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
ARTIFACTS = ROOT / "test-artifacts"


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if item.get_closest_marker("cuda") is not None:
                item.add_marker(skip)


def uv_sphere(n_lat: int = 12, n_lon: int = 24, radius: float = 1.0, dtype=torch.float64):
    """Closed, consistently wound (counter-clockwise outside) UV sphere: ``(verts [V, 3], faces [F, 3])``."""
    verts = [[0.0, radius, 0.0]]
    for i in range(1, n_lat):
        theta = math.pi * i / n_lat
        for j in range(n_lon):
            phi = 2 * math.pi * j / n_lon
            verts.append([radius * math.sin(theta) * math.cos(phi), radius * math.cos(theta),
                          radius * math.sin(theta) * math.sin(phi)])
    verts.append([0.0, -radius, 0.0])
    faces = []
    ring = lambda i, j: 1 + (i - 1) * n_lon + (j % n_lon)  # noqa: E731
    for j in range(n_lon):
        faces.append([0, ring(1, j + 1), ring(1, j)])
    for i in range(1, n_lat - 1):
        for j in range(n_lon):
            a, b, c, d = ring(i, j), ring(i, j + 1), ring(i + 1, j), ring(i + 1, j + 1)
            faces += [[a, b, c], [b, d, c]]
    last = len(verts) - 1
    for j in range(n_lon):
        faces.append([last, ring(n_lat - 1, j), ring(n_lat - 1, j + 1)])
    return torch.tensor(verts, dtype=dtype), torch.tensor(faces, dtype=torch.int64)


def camera_at(eye, target=(0.0, 0.0, 0.0), size=(32, 32), fov_y=0.9, dtype=torch.float64, **kw):
    """An unbatched look-at camera with world +y up."""
    return lg.Camera.look_at(torch.tensor(eye, dtype=dtype), torch.tensor(target, dtype=dtype),
                             torch.tensor([0.0, 1.0, 0.0], dtype=dtype), fov_y=fov_y, width=size[0],
                             height=size[1], **kw)


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.reshape(-1).double(), b.reshape(-1).double()
    return float((a @ b) / (a.norm() * b.norm()).clamp_min(1e-30))


def central_fd(fn, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Central finite differences of the scalar ``fn(x)`` for every element of ``x``."""
    g = torch.zeros_like(x)
    flat = x.reshape(-1)
    gf = g.reshape(-1)
    with torch.no_grad():
        for i in range(flat.numel()):
            old = flat[i].item()
            flat[i] = old + eps
            up = float(fn(x))
            flat[i] = old - eps
            down = float(fn(x))
            flat[i] = old
            gf[i] = (up - down) / (2 * eps)
    return g


def mitsuba_scalar():
    """Mitsuba 3 in its ``scalar_rgb`` variant, or a skip when it is not importable (an optional dependency of
    the tests: ``bash benchmarks/setup_mitsuba.sh``)."""
    mi = pytest.importorskip("mitsuba")
    try:
        mi.set_variant("scalar_rgb")
    except Exception as e:  # noqa: BLE001  a build without the variant
        pytest.skip(f"mitsuba scalar_rgb variant unavailable: {e}")
    return mi


def save_failure_images(name: str, **images: torch.Tensor) -> Path:
    """Write images (``[H, W]`` or ``[H, W, C]``, any range) under test-artifacts/NAME for a person to look at."""
    out = ARTIFACTS / name
    out.mkdir(parents=True, exist_ok=True)
    for key, img in images.items():
        img = img.detach().double()
        if img.dim() == 2:
            img = img[..., None]
        lo, hi = float(img.min()), float(img.max())
        lg.io.write_image(out / f"{key}.png", ((img - lo) / max(hi - lo, 1e-12))[..., :3])
    return out


@pytest.fixture(scope="session")
def spot():
    from lumigrad.data import load_spot

    return load_spot()
