"""The package's layering, checked on the import graph of ``src/lumigrad`` (parsed with ``ast``, nothing imported).

docs/design.md section 1 draws the layers and states the rules; this test is their enforcement:

1. **Downward only.** Every module belongs to a *unit* (a top-level subpackage or module of ``lumigrad``); each
   unit sits in one layer of ``LAYERS`` and imports only its own unit and units of lower layers (imports inside
   functions count: a lazy import is still a dependency).
2. **Only io, data and the layers above them read files**: ``lumigrad.io`` is imported from no module below it.
3. **No private names cross modules**: no ``from m import _x`` or ``m._x`` of another lumigrad module, and a
   private module (``pkg/_m.py``) is imported only from inside ``pkg``.

A needed exception goes into ``ALLOWED`` with its reason; keep it short.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "lumigrad"

#: Bottom to top. A unit may import its own unit and the units of lower layers, never a sibling or a layer above.
LAYERS: List[Tuple[str, ...]] = [
    ("_checks", "conventions", "limits", "threads", "registry"),  # foundation: no lumigrad imports but these
    ("kernels",),            # the only package that imports warp
    ("cameras",),            # Camera, projection, distortion (undistortion runs a kernel)
    ("raster",),             # rasterize, interpolate, texture, antialias, soft raster, lens warp
    ("shading", "geometry"),  # BRDFs, lights, materials (textures sample through raster); mesh geometry
    ("mesh", "losses", "raytrace", "animation"),  # Mesh container; losses; ray queries, transport; skinning, keyframes
    ("volume",),             # volume rendering, fields; its exports make Meshes
    ("scene",),              # Scene, shapes, lights, film, flattening (renderers are integrators)
    ("integrators", "optim"),  # renderers behind one protocol; Fit, large steps, strategies
    ("fluid",),              # differentiable smoke simulation, rendered through the volume renderer
    ("io",),                 # readers and writers; foreign conventions converted here, once
    ("data",),               # embedded assets, read through io
    ("physics",),            # optional NVIDIA Newton simulation bridged to torch (imports newton/warp lazily)
    ("app",),                # presentation: demo, reports, benchmarking helpers
    ("fitting",),            # `lumigrad fit`: configs, problems, outputs
    ("__init__",),           # the public facade ``import lumigrad``
    ("cli",),                # `lumigrad ...` commands
    ("__main__",),           # `python -m lumigrad`: runs the cli
]
LEVEL: Dict[str, int] = {unit: k for k, layer in enumerate(LAYERS) for unit in layer}

#: Units that may import ``lumigrad.io``: io itself and every layer from io up.
IO_USERS = {unit for unit, level in LEVEL.items() if level >= LEVEL["io"]}

#: ``(importing module, imported module, name or None)`` -> why it is allowed.
ALLOWED: Dict[Tuple[str, str, str], str] = {
}


@dataclass(frozen=True)
class Import:
    module: str   # the importing module, e.g. "lumigrad.scene.lights"
    target: str   # the imported module, e.g. "lumigrad.shading.lights"
    name: str     # the imported name ("" for ``import target`` or a whole module), e.g. "towards_point"
    line: int

    def __str__(self) -> str:
        what = f"{self.target}.{self.name}" if self.name else self.target
        return f"{self.module} (line {self.line}) imports {what}"


def _module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str, src: Path = SRC) -> bool:
    rel = Path(*name.split(".")[1:]) if "." in name else Path()
    return (src / rel).with_suffix(".py").is_file() or (src / rel / "__init__.py").is_file()


def _unit(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def _parse(path: Path, src: Path = SRC):
    """The lumigrad imports of one file, and its ``m._x`` attribute reads of imported lumigrad modules."""
    module, is_pkg = _module_name(path, src), path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    imports: List[Import] = []
    bound: Dict[str, str] = {}  # local name -> lumigrad module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "lumigrad":
                    imports.append(Import(module, a.name, "", node.lineno))
                    bound[a.asname or a.name.split(".")[0]] = a.name if a.asname else "lumigrad"
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_pkg else module.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "lumigrad":
                continue
            for a in node.names:
                full = f"{target}.{a.name}"
                if _is_module(full, src):  # ``from pkg import submodule``: an import of the submodule
                    imports.append(Import(module, full, "", node.lineno))
                    bound[a.asname or a.name] = full
                else:
                    imports.append(Import(module, target, a.name, node.lineno))
    attrs = [Import(module, bound[n.value.id], n.attr, n.lineno) for n in ast.walk(tree)
             if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in bound]
    return imports, attrs


def _graph():
    imports, attrs = [], []
    for path in sorted(SRC.rglob("*.py")):
        i, a = _parse(path)
        imports += i
        attrs += a
    return imports, attrs


IMPORTS, ATTRIBUTES = _graph()


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _allowed(imp: Import) -> bool:
    return (imp.module, imp.target, imp.name) in ALLOWED


def test_every_unit_has_a_layer():
    units = {_unit(_module_name(p)) for p in SRC.rglob("*.py")}
    assert units - set(LEVEL) == set(), "add the new unit to LAYERS (and to the diagram in docs/design.md)"


def test_imports_go_down_the_layers():
    bad = [f"{imp}: {_unit(imp.module)!r} (layer {LEVEL[_unit(imp.module)]}) may not import "
           f"{_unit(imp.target)!r} (layer {LEVEL[_unit(imp.target)]})"
           for imp in IMPORTS
           if _unit(imp.target) != _unit(imp.module)
           and not (imp.target == "lumigrad" and imp.name == "__version__")  # a constant, not the facade
           and LEVEL[_unit(imp.target)] >= LEVEL[_unit(imp.module)] and not _allowed(imp)]
    assert bad == []


def test_no_lower_layer_imports_io():
    bad = [str(imp) for imp in IMPORTS if _unit(imp.target) == "io" and _unit(imp.module) not in IO_USERS]
    assert bad == []
    # And the readers' old homes stay clean (the deprecated aliases are attached from io, not imported there).
    for module in ("lumigrad.mesh", "lumigrad.scene.lights"):
        assert [str(i) for i in IMPORTS if i.module == module and _unit(i.target) == "io"] == []


def test_no_private_names_cross_modules():
    bad = [str(imp) for imp in IMPORTS + ATTRIBUTES
           if imp.target != imp.module and _private(imp.name) and not _allowed(imp)]
    assert bad == []


def test_private_modules_stay_in_their_package():
    bad = []
    for imp in IMPORTS:
        parts = imp.target.split(".")
        for k, part in enumerate(parts):
            if _private(part) and not imp.module.startswith(".".join(parts[:k]) + ".") \
                    and imp.module != ".".join(parts[:k]):
                bad.append(f"{imp}: {'.'.join(parts[:k + 1])} is private to {'.'.join(parts[:k])}")
    assert bad == []


def test_the_allow_list_is_used():
    used = {(i.module, i.target, i.name) for i in IMPORTS + ATTRIBUTES}
    assert set(ALLOWED) - used == set(), "remove allow-list entries whose import is gone"


def test_obj_and_mtl_do_not_import_each_other():
    mtl = {i.target for i in IMPORTS if i.module == "lumigrad.io.mtl"}
    assert "lumigrad.io.obj" not in mtl


@pytest.mark.parametrize("source, expected", [
    ("from ..io.obj import read_obj\n", "lumigrad.shading.planted (line 1) imports lumigrad.io.obj.read_obj"),
    ("def f():\n    from .lights import _towards\n", "imports lumigrad.shading.lights._towards"),
    ("from . import lights\nx = lights._towards\n", "imports lumigrad.shading.lights._towards"),
])
def test_the_parser_sees_what_it_checks(tmp_path, source, expected):
    """Planted violations are found (so the empty lists above mean something)."""
    pkg = tmp_path / "lumigrad" / "shading"
    pkg.mkdir(parents=True)
    for p in (tmp_path / "lumigrad" / "__init__.py", pkg / "__init__.py", pkg / "lights.py"):
        p.write_text("")
    (pkg / "planted.py").write_text(source)
    imports, attrs = _parse(pkg / "planted.py", tmp_path / "lumigrad")
    assert any(expected in str(i) for i in imports + attrs), [str(i) for i in imports + attrs]
