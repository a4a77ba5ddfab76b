"""Wavefront MTL material libraries <-> glTF-style metallic-roughness :class:`lumigrad.shading.Material`.

Reading (:func:`read_mtl`) maps each ``newmtl`` block to one ``Material``:

* ``Kd`` -> ``base_color_factor[:3]`` (default 0.8 grey, or white when ``map_Kd`` is given); ``d`` (or
  ``1 - Tr``) -> ``base_color_factor[3]`` (alpha); ``map_Kd`` -> ``base_color_texture`` (values as stored, i.e.
  sRGB-encoded, exactly like the glTF reader: :func:`lumigrad.shading.sample_material` decodes them);
  ``map_d`` -> the alpha channel of ``base_color_texture``.
* ``Pr`` -> ``roughness_factor``; without ``Pr``, the Blinn-Phong exponent ``Ns`` gives
  ``roughness = sqrt(2 / (Ns + 2))`` (the usual Beckmann / GGX match; no ``Ns`` means ``Ns = 0``, roughness 1).
* ``Pm`` -> ``metallic_factor`` (default 0). Without ``Pm``, a mirror-like legacy material (``illum`` 3 or 5
  with ``max(Ks) > max(Kd)``) becomes metallic 1 with base colour ``Ks`` (the Cornell box's mirror block).
* ``map_Pr`` / ``map_Pm`` -> the G / B channels of ``metallic_roughness_texture`` (the factors multiply the
  maps, as in glTF; a map without its scalar keeps factor 1).
* ``Ke`` -> ``emissive_factor``; ``map_Ke`` -> ``emissive_texture`` (sRGB-encoded, as stored).
* ``norm``, and ``map_Bump`` / ``bump`` when the image is an RGB normal map -> ``normal_texture`` with
  ``normal_scale`` from ``-bm``; a grey-scale ``bump`` image is a height map, which lumigrad does not use
  (ignored with a warning). ``map_ao`` (an extension some exporters write) -> ``occlusion_texture``.
* ``Ni`` -> ``ior`` when ``Ni >= 1`` (smaller values, which some exporters write as placeholders, are ignored
  with a warning).
* ``-clamp on`` on any map makes the material's ``wrap`` ``"clamp"``; other map options (``-s``, ``-o``,
  ``-t``, ``-mm``, ``-imfchan``, ``-blendu`` ...) are parsed and skipped.
* Read and ignored: ``Ka``, ``Ks`` (except for the mirror rule), ``map_Ks`` (with a warning: there is no
  specular slot), ``illum`` (except for the mirror rule), ``Pe``, ``Tf``, ``sharpness`` and the other
  ``P*`` extension terms. Unknown statements are ignored with one warning per file.

Texture paths are resolved relative to the MTL file's folder (``\\`` is read as ``/``); a texture that does
not exist raises :class:`MtlError` naming the MTL file and line. Textures are read only from inside that
folder and only when they are regular files (:mod:`lumigrad.io._paths`): an absolute path, a ``../`` escape
or a symbolic link that points outside raises an ``MtlError`` that is also a
:class:`~lumigrad.io._paths.ConfinementError`, unless ``trust_paths=True``. Errors and warnings name the file,
the line and the statement's keyword, never the line's text (a file that is not an MTL prints nothing of
its content). Inline ``#`` comments are stripped, so file and material names cannot contain ``#``.

Writing (:func:`write_mtl`) is the inverse: factors as ``Kd``, ``d``, ``Ke``, ``Pr`` (and the equivalent
``Ns = 2 / roughness^2 - 2`` for legacy readers), ``Pm``, ``Ni``; textures as 8-bit PNG files next to the
MTL file.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

from ..shading.material import Material, mitsuba_model
from ._paths import ConfinementError, check_regular_file, confined_path, keyword_text, short_text
from .errors import MtlError

__all__ = ["MtlError", "read_mtl", "write_mtl"]


class _MtlPathError(MtlError, ConfinementError):
    """An MTL file names a texture outside its folder, or one that is not a regular file."""


class _LineError(ValueError):
    """A malformed statement; the message is written by this module and quotes nothing from the line."""



#: Map options and how many arguments each takes (``(min, max)``; numbers are consumed greedily up to max).
_MAP_OPTIONS = {"-blendu": (1, 1), "-blendv": (1, 1), "-bm": (1, 1), "-boost": (1, 1), "-cc": (1, 1),
                "-clamp": (1, 1), "-imfchan": (1, 1), "-mm": (2, 2), "-o": (1, 3), "-s": (1, 3), "-t": (1, 3),
                "-texres": (1, 1), "-type": (1, 1)}
_MAPS = {"map_kd": "kd", "map_d": "d", "map_bump": "bump", "bump": "bump", "norm": "norm", "map_pr": "pr",
         "map_pm": "pm", "map_ke": "ke", "map_ao": "ao", "map_ks": "ks"}
#: Statements that are understood and deliberately not used.
_IGNORED = {"ka", "tf", "sharpness", "ps", "pc", "pcr", "aniso", "anisor", "pe", "map_ka", "map_ns", "map_ps",
            "disp", "decal", "refl", "map_refl", "map_aat", "map_disp", "map_tf", "map_pe"}


class _Block:
    """The raw statements of one ``newmtl`` block, converted to a Material by :func:`_to_material`."""

    def __init__(self, name: str, lineno: int):
        self.name, self.lineno = name, lineno
        self.scalars: Dict[str, float] = {}
        self.colors: Dict[str, List[float]] = {}
        self.maps: Dict[str, Tuple[Path, Dict[str, List[str]], int]] = {}
        self.illum: Optional[int] = None


def read_mtl(path: str | os.PathLike, dtype: torch.dtype = torch.float32, *,
             trust_paths: bool = False) -> Dict[str, Material]:
    """Read the MTL file ``path`` as ``{material name: Material}`` in file order (see the module docstring).

    Args:
        path: the ``.mtl`` file; texture paths in it are relative to its folder.
        dtype: floating dtype of the factors and textures.
        trust_paths: also read textures named by absolute paths or outside the MTL's folder (only for files
            you trust).

    Returns:
        dict of :class:`lumigrad.shading.Material` keyed by the ``newmtl`` names (later duplicates replace
        earlier ones, with a warning).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        MtlError: a malformed statement, a value out of range (``d``, ``Pr``, ``Pm`` outside [0, 1], a NaN or
            Inf number), a missing or undecodable texture; the message names the file and line. A texture
            outside the folder or not a regular file raises an ``MtlError`` that is also a ``ConfinementError``.

    Example: ``newmtl red`` / ``Kd 1 0 0`` / ``Ns 0`` reads as ``base_color_factor = [1, 0, 0, 1]``,
    ``roughness_factor = sqrt(2 / 2) = 1``, ``metallic_factor = 0``.
    """
    path = Path(path)
    blocks: List[_Block] = []
    unknown: List[str] = []  # keywords shown in the warning (identifiers only)
    unknown_lines: List[int] = []  # every line with an unknown statement
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split("#", 1)[0].split()
            if not parts:
                continue
            tag = parts[0].lower()
            try:
                if tag == "newmtl":
                    name = " ".join(parts[1:])
                    if not name:
                        raise _LineError("newmtl needs a material name")
                    blocks.append(_Block(name, lineno))
                    continue
                if tag not in _MAPS and tag not in _IGNORED and tag not in _STATEMENTS:
                    unknown_lines.append(lineno)
                    keyword = parts[0] if keyword_text(parts[0]) else None  # "root:x:0:0:..." is not shown
                    if keyword is not None and keyword not in unknown and len(unknown) < 8:
                        unknown.append(keyword)
                    continue
                if not blocks:
                    raise _LineError("statement before any newmtl")
                block = blocks[-1]
                if tag in _MAPS:
                    block.maps[_MAPS[tag]] = _parse_map(path, parts[0], parts[1:], lineno, trust_paths)
                elif tag in _STATEMENTS:
                    _STATEMENTS[tag](block, parts[1:])
            except (ValueError, OverflowError) as exc:
                if isinstance(exc, MtlError):
                    raise
                # Only this module's own messages are shown: the line itself is never quoted.
                reason = str(exc) if isinstance(exc, _LineError) else "malformed statement"
                raise MtlError(f"{path}:{lineno}: {parts[0]}: {reason}") from None
    if unknown_lines:
        lines = ", ".join(str(n) for n in unknown_lines[:5]) + (", ..." if len(unknown_lines) > 5 else "")
        shown = f" {', '.join(unknown)}" if unknown else ""
        warnings.warn(f"{path}: ignored unknown MTL statements{shown} (line{'s' * (len(unknown_lines) != 1)} "
                      f"{lines})", stacklevel=2)
    out: Dict[str, Material] = {}
    for block in blocks:
        if block.name in out:
            warnings.warn(f"{path}:{block.lineno}: material {short_text(block.name)} is defined again; the later "
                          "one is used", stacklevel=2)
        out[block.name] = _to_material(path, block, dtype)
    return out


# ------------------------------------------------------------------------------------------------ parsing
def _number(token: str, what: str) -> float:
    try:
        value = float(token)
    except ValueError:
        raise _LineError(f"{what} is not a number") from None
    if not math.isfinite(value):
        raise _LineError(f"{what} must be finite")
    return value


def _scalar(key: str, lo: Optional[float] = None, hi: Optional[float] = None):
    def parse(block: _Block, args: List[str]) -> None:
        args = [a for a in args if a != "-halo"]  # "d -halo 0.5": the halo form reads as plain d
        if len(args) < 1:
            raise _LineError(f"{key} needs a value")
        value = _number(args[0], key)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise _LineError(f"{key} must lie in [{lo}, {hi if hi is not None else 'inf'}]; got {value}")
        block.scalars[key] = value

    return parse


def _color(key: str):
    def parse(block: _Block, args: List[str]) -> None:
        if args and args[0].lower() in ("spectral", "xyz"):
            raise _LineError(f"{key} {args[0].lower()} colours are not supported (use r g b)")
        if len(args) not in (1, 3):
            raise _LineError(f"{key} needs 1 or 3 values (r g b); got {len(args)}")
        values = [_number(a, f"{key} value {k}") for k, a in enumerate(args, 1)]
        block.colors[key] = values * 3 if len(values) == 1 else values

    return parse


def _illum(block: _Block, args: List[str]) -> None:
    if len(args) != 1:
        raise _LineError("illum needs one integer")
    try:
        block.illum = int(args[0])
    except ValueError:
        raise _LineError("illum needs one integer") from None


_STATEMENTS = {"kd": _color("Kd"), "ks": _color("Ks"), "ke": _color("Ke"), "ns": _scalar("Ns", 0.0),
               "ni": _scalar("Ni", 0.0), "d": _scalar("d", 0.0, 1.0), "tr": _scalar("Tr", 0.0, 1.0),
               "pr": _scalar("Pr", 0.0, 1.0), "pm": _scalar("Pm", 0.0, 1.0), "illum": _illum}


def _parse_map(mtl_path: Path, keyword: str, args: List[str], lineno: int,
               trust_paths: bool = False) -> Tuple[Path, Dict[str, List[str]], int]:
    """Split ``[-opt args...] file name`` into ``(resolved file, {option: args}, lineno)``.

    The file is confined to the MTL's folder (unless ``trust_paths``) and must be a regular file.
    """
    options: Dict[str, List[str]] = {}
    k = 0
    while k < len(args) and args[k].startswith("-") and args[k].lower() in _MAP_OPTIONS:
        opt = args[k].lower()
        lo, hi = _MAP_OPTIONS[opt]
        values = []
        k += 1
        while len(values) < hi and k < len(args) and (len(values) < lo or _is_number(args[k])):
            values.append(args[k])
            k += 1
        if len(values) < lo:
            raise _LineError(f"map option {opt} needs {lo} value(s)")
        if opt in ("-bm", "-boost", "-o", "-s", "-t", "-mm", "-texres"):
            for v in values:
                _number(v, f"map option {opt}")
        options[opt] = values
    name = " ".join(args[k:])
    if not name:
        raise _LineError("a texture map needs a file name")
    where = f"{mtl_path}:{lineno}"
    file = confined_path(mtl_path.parent, name.replace("\\", "/"), source=where, what=f"{keyword} texture",
                         trusted=trust_paths, base=_MtlPathError)
    try:
        check_regular_file(file, source=where, what=f"{keyword} texture", base=_MtlPathError)
    except FileNotFoundError:
        raise MtlError(f"{where}: texture {short_text(name)} not found (looked for {file})") from None
    return file, options, lineno


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------------------------------ to Material
def _load_texture(mtl_path: Path, entry, dtype: torch.dtype) -> torch.Tensor:
    from .image import read_image

    file, _, lineno = entry
    try:
        image = read_image(file)
    except Exception as exc:  # noqa: BLE001  Pillow raises many types (OSError, SyntaxError, EOFError ...)
        reason = str(exc) if len(str(exc)) <= 200 else str(exc)[:197] + "..."
        raise MtlError(f"{mtl_path}:{lineno}: cannot read texture {short_text(str(file), 200)} ({reason})") from None
    if image.dim() != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise MtlError(f"{mtl_path}:{lineno}: texture {short_text(str(file), 200)} is empty")
    return image.to(dtype)


def _resize(image: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    if tuple(image.shape[:2]) == tuple(size):
        return image
    resized = torch.nn.functional.interpolate(image.permute(2, 0, 1)[None], size=size, mode="bilinear",
                                              align_corners=False)
    return resized[0].permute(1, 2, 0)


def _to_material(path: Path, block: _Block, dtype: torch.dtype) -> Material:
    s, c, maps = block.scalars, block.colors, block.maps
    where = f"{path}:{block.lineno}: material {short_text(block.name)}"
    t = lambda v: torch.tensor(v, dtype=dtype)  # noqa: E731
    tex = {key: _load_texture(path, entry, dtype) for key, entry in maps.items() if key != "ks"}
    if "ks" in maps:
        warnings.warn(f"{path}:{maps['ks'][2]}: map_Ks ignored (metallic-roughness materials have no specular map)",
                      stacklevel=3)
    rgb = c.get("Kd", [1.0, 1.0, 1.0] if "kd" in maps else [0.8, 0.8, 0.8])
    alpha = s["d"] if "d" in s else (1.0 - s["Tr"] if "Tr" in s else 1.0)
    metallic = s.get("Pm", 0.0)
    ks = c.get("Ks")
    if "Pm" not in s and "pm" not in maps and block.illum in (3, 5) and ks is not None and max(ks) > max(rgb):
        rgb, metallic = ks, 1.0
    if "Pr" in s:
        roughness = s["Pr"]
    elif "pr" in maps:
        roughness = 1.0
    else:
        roughness = math.sqrt(2.0 / (s.get("Ns", 0.0) + 2.0))
    kw = dict(base_color_factor=t(rgb + [alpha]), metallic_factor=t(metallic), roughness_factor=t(roughness),
              emissive_factor=t(c.get("Ke", [1.0, 1.0, 1.0] if "ke" in maps else [0.0, 0.0, 0.0])))
    if "Ni" in s:
        if s["Ni"] >= 1.0:
            kw["ior"] = t(s["Ni"])
        else:
            warnings.warn(f"{where}: Ni {s['Ni']} < 1 ignored (ior stays 1.5)", stacklevel=3)
    base = tex.get("kd")
    if "d" in tex:
        a = _resize(tex["d"], base.shape[:2] if base is not None else tex["d"].shape[:2])[..., :1]
        rgb_map = base[..., :3] if base is not None else torch.ones(a.shape[:2] + (3,), dtype=dtype)
        base = torch.cat([rgb_map, a], -1)
    kw["base_color_texture"] = base
    if "pr" in tex or "pm" in tex:
        first = tex.get("pr", tex.get("pm"))
        size = first.shape[:2]
        ones = torch.ones(size + (1,), dtype=dtype)
        g = _resize(tex["pr"], size)[..., :1] if "pr" in tex else ones
        b = _resize(tex["pm"], size)[..., :1] if "pm" in tex else ones
        kw["metallic_roughness_texture"] = torch.cat([ones, g, b], -1)
    normal_key = "norm" if "norm" in tex else ("bump" if "bump" in tex else None)
    if normal_key == "bump" and _is_grey(tex["bump"]):
        warnings.warn(f"{path}:{maps['bump'][2]}: bump map is a grey-scale height map; ignored (only normal "
                      "maps are used)", stacklevel=3)
        normal_key = None
    if normal_key is not None:
        kw["normal_texture"] = tex[normal_key][..., :3]
        bm = maps[normal_key][1].get("-bm")
        if bm:
            kw["normal_scale"] = t(float(bm[0]))
    if "ao" in tex:
        kw["occlusion_texture"] = tex["ao"][..., :1]
    if "ke" in tex:
        kw["emissive_texture"] = tex["ke"][..., :3]
    clamp = any(entry[1].get("-clamp", ["off"])[0].lower() == "on" for entry in maps.values())
    try:
        return Material(**kw, wrap="clamp" if clamp else "repeat")
    except (TypeError, ValueError) as exc:
        raise MtlError(f"{where}: {exc}") from None


def _is_grey(image: torch.Tensor) -> bool:
    if image.shape[-1] < 3:
        return True
    rgb = image[..., :3]
    return bool((rgb.amax(-1) - rgb.amin(-1)).max() < 1e-6)


# ------------------------------------------------------------------------------------------------ writing
_NAME_BAD = re.compile(r"[#\r\n]")


def write_mtl(path: str | os.PathLike, materials: Dict[str, Material], texture_prefix: Optional[str] = None) -> None:
    """Write ``materials`` as an MTL file that :func:`read_mtl` reads back to the same factors and textures.

    Args:
        path: destination ``.mtl`` file.
        materials: ``{name: Material}``; names must be non-empty, without ``#``, tabs, line breaks, repeated
            or leading / trailing spaces (``read_mtl`` joins the words of a name with single spaces).
        texture_prefix: file-name prefix of the PNG textures written next to ``path`` (default: the MTL
            file's stem and ``_``); each texture is ``{prefix}{index}_{slot}.png`` with the material's index.

    Written per material: ``Kd``, ``d`` (base colour alpha), ``Ke``, ``Ns = 2 / roughness^2 - 2`` (capped at
    1e6) for legacy readers, ``Pr``, ``Pm``, ``Ni``, ``illum 2``; textures: ``map_Kd`` (RGB or RGBA),
    ``map_Pr`` / ``map_Pm`` (the G / B channels of ``metallic_roughness_texture``, grey-scale), ``norm`` with
    ``-bm normal_scale``, ``map_ao`` (R of ``occlusion_texture``), ``map_Ke``; ``-clamp on`` when ``wrap`` is
    ``"clamp"``. Textures are quantised to 8 bits (read back within 0.5 / 255); factors read back exactly in
    float64 and float32. ``occlusion_strength`` has no MTL statement and is not written (reads back as 1);
    neither have ``specular_factor`` (KHR_materials_specular; reads back as 1) and ``transmission_factor`` (reads
    back as 0): a material whose values differ is written with a warning naming it.

    Raises:
        TypeError: ``materials`` is not a dict of Material.
        ValueError: a material name cannot be written, or a material uses ``wrap="mirror"`` with textures
            (MTL cannot express mirrored repeat).
    """
    from .image import write_image

    path = Path(path)
    if not isinstance(materials, dict):
        raise TypeError(f"materials must be a dict {{name: Material}}; got {type(materials).__name__}")
    prefix = f"{path.stem}_" if texture_prefix is None else texture_prefix
    lines = ["# written by lumigrad\n"]
    for index, (name, m) in enumerate(materials.items()):
        if not isinstance(m, Material):
            raise TypeError(f"materials[{name!r}] must be a lumigrad.shading.Material; got {type(m).__name__}")
        if not isinstance(name, str) or not name or " ".join(name.split()) != name or _NAME_BAD.search(name):
            raise ValueError(f"material name {name!r} cannot be written to MTL (empty, '#', line break, tab, "
                             "repeated or leading / trailing spaces)")
        if m.wrap == "mirror" and m.has_textures():
            raise ValueError(f"materials[{name!r}] has wrap='mirror', which MTL cannot express")
        lost = [k for k, v, default in (("specular_factor", m.specular_factor, 1.0),
                                        ("transmission_factor", m.transmission_factor, 0.0))
                if bool((v.detach() != default).any())]
        if lost:
            verb = "has" if len(lost) == 1 else "have"
            warnings.warn(f"materials[{name!r}]: {' and '.join(lost)} {verb} no MTL statement, not written (glTF "
                          "keeps them)", stacklevel=2)
        model = mitsuba_model(m)
        if model is not None:
            warnings.warn(f"materials[{name!r}]: {model} (Mitsuba's model) has no MTL statement, not written",
                          stacklevel=2)
        if m.roughness_aspect is not None:
            warnings.warn(f"materials[{name!r}]: roughness_aspect (an anisotropic lobe) has no MTL statement, not "
                          "written", stacklevel=2)
        if m.delta_specular:
            warnings.warn(f"materials[{name!r}]: delta_specular (Dirac specular lobes) has no MTL statement, not "
                          "written", stacklevel=2)
        if m.mitsuba_normal_map and m.normal_texture is not None:
            warnings.warn(f"materials[{name!r}]: mitsuba_normal_map (Mitsuba's normal-map shadowing and frames) has "
                          "no MTL statement, not written (the map itself is)", stacklevel=2)
        if m.microfacet != "ggx":
            warnings.warn(f"materials[{name!r}]: microfacet {m.microfacet!r} has no MTL statement, not written (read "
                          "back as GGX)", stacklevel=2)
        f = lambda x: repr(float(x))  # noqa: E731  (repr of a float64 reads back exactly)
        bc = m.base_color_factor.detach().double().reshape(-1).tolist()
        rough = float(m.roughness_factor.detach().double())
        ns = min(2.0 / max(rough, 1e-30) ** 2 - 2.0, 1e6)
        lines += [f"\nnewmtl {name}\n", f"Kd {f(bc[0])} {f(bc[1])} {f(bc[2])}\n", f"d {f(bc[3])}\n",
                  "Ke " + " ".join(f(x) for x in m.emissive_factor.detach().double().reshape(-1).tolist()) + "\n",
                  f"Ns {f(ns)}\n", f"Pr {f(rough)}\n", f"Pm {f(m.metallic_factor.detach().double())}\n",
                  f"Ni {f(m.ior.detach().double())}\n", "illum 2\n"]
        clamp = "-clamp on " if m.wrap == "clamp" else ""

        def save(slot: str, image: torch.Tensor) -> str:
            file = f"{prefix}{index}_{slot}.png"
            write_image(path.parent / file, image.detach().cpu())
            return file

        if m.base_color_texture is not None:
            lines.append(f"map_Kd {clamp}{save('base_color', m.base_color_texture)}\n")
        if m.metallic_roughness_texture is not None:
            mr = m.metallic_roughness_texture
            lines.append(f"map_Pr {clamp}{save('roughness', mr[..., 1:2])}\n")
            lines.append(f"map_Pm {clamp}{save('metallic', mr[..., 2:3])}\n")
        if m.normal_texture is not None:
            lines.append(f"norm {clamp}-bm {f(m.normal_scale.detach().double())} "
                         f"{save('normal', m.normal_texture)}\n")
        if m.occlusion_texture is not None:
            lines.append(f"map_ao {clamp}{save('occlusion', m.occlusion_texture[..., :1])}\n")
        if m.emissive_texture is not None:
            lines.append(f"map_Ke {clamp}{save('emissive', m.emissive_texture)}\n")
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("".join(lines))
