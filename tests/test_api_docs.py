"""The API reference (scripts/api_docs.py, pdoc) builds from the docstrings and documents the public names."""

import importlib
import importlib.util
import re
from pathlib import Path

import pytest

import lumigrad

pytest.importorskip("pdoc", reason="the API reference needs pdoc (test and docs extras)")

ROOT = Path(__file__).resolve().parents[1]
MAIN_SUBMODULES = ("cameras", "raster", "shading", "io", "optim", "losses", "fitting")

#: pdoc cannot evaluate these postponed annotations (a NamedTuple's generated ``__new__``, an ``__init__``
#: inherited from another module, a ``TYPE_CHECKING`` import); it prints them as written. Any other warning
#: (a new unresolvable annotation, a module that fails to import, a duplicated page) fails the test.
KNOWN_WARNINGS = {  # (annotation, qualified name of the object), one pair per line of pdoc's message
    ("Material", "SkinnedMesh.__init__"),  # inherited from SceneMesh, whose module imports Material
    ("ForwardRef('Optional[torch.Tensor]')", "BSDFSample.__init__"),  # NamedTuple fields
    ("ForwardRef('Optional[torch.Tensor]')", "SoftRaster.__init__"),
    ("ForwardRef('Optional[torch.Tensor]')", "PunctualLights.__init__"),  # NamedTuple fields (spot / range)
    ("ForwardRef('Optional[bool]')", "PunctualLights.__init__"),  # its host-side points_only flag
    ("ForwardRef('List')", "SmokeRun.__init__"),
    ("ForwardRef('SmokeState')", "SmokeRun.__init__"),
}


def _load_script():
    spec = importlib.util.spec_from_file_location("api_docs", ROOT / "scripts" / "api_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _unexpected(messages):
    out = []
    for message in messages:
        found = re.match(r"Error parsing type annotation (.+) for (\S+)\. ", message)
        if found and (found[1], ".".join(found[2].split(".")[-2:])) in KNOWN_WARNINGS:
            continue
        out.append(message)
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("api")
    return out, _load_script().build(out)


def _anchors(page: Path) -> set:
    return set(re.findall(r'<section id="([^"]+)">', page.read_text(encoding="utf-8")))


def test_builds_without_unexpected_warnings(reference):
    out, messages = reference
    assert (out / "index.html").is_file()
    assert not _unexpected(messages)


def test_every_top_level_name_is_documented(reference):
    out, _ = reference
    anchors = _anchors(out / "lumigrad.html")
    missing = []
    for name in lumigrad.__all__:
        if isinstance(getattr(lumigrad, name), type(lumigrad)):
            if not (out / "lumigrad" / f"{name}.html").is_file():
                missing.append(f"page of module lumigrad.{name}")
        elif name not in anchors:
            missing.append(name)
    assert not missing


@pytest.mark.parametrize("name", MAIN_SUBMODULES)
def test_main_submodules_have_pages_with_their_public_names(reference, name):
    out, _ = reference
    page = out / "lumigrad" / f"{name}.html"
    assert page.is_file()
    module = importlib.import_module(f"lumigrad.{name}")
    names = [n for n in getattr(module, "__all__", ()) if not isinstance(getattr(module, n), type(module))]
    assert names, f"lumigrad.{name} declares no public names"
    html = page.read_text(encoding="utf-8")
    anchors = _anchors(page)
    missing = [n for n in names if n not in anchors]
    assert not missing, f"lumigrad.{name}: {missing}"
    # the docstrings' text is rendered, not just the names: the plain opening words of each first line
    shown = [n for n in names if callable(getattr(module, n)) and (getattr(module, n).__doc__ or "").strip()]
    openings = [re.split(r"[`:*(<>&'\"\[]", getattr(module, n).__doc__.strip().splitlines()[0])[0].strip()
                for n in shown]
    openings = [text for text in openings if len(text) >= 12]
    assert openings and all(text in html for text in openings), f"lumigrad.{name}"
