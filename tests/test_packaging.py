"""What the installed package declares to tools: type hints (PEP 561) and the top-level names users reach for."""

import tomllib
from pathlib import Path

import lumigrad as lg

ROOT = Path(__file__).resolve().parents[1]


def test_package_is_marked_typed_and_ships_the_marker():
    assert (Path(lg.__file__).parent / "py.typed").is_file()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["lumigrad"]


def test_material_is_exported_at_top_level():
    assert lg.Material is lg.shading.Material and "Material" in lg.__all__
