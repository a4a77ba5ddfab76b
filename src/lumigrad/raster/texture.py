"""Texture sampling: nearest, bilinear and trilinear (mipmapped) filtering with repeat / clamp / mirror wrap."""

from __future__ import annotations

import contextlib
import copy
import weakref
from typing import Callable, Dict, List, Literal, Optional, Sequence

import torch

from .._checks import check_all_finite, check_choice, check_number, check_tensor, check_texture_layout
from ..kernels.texture import sample_texture
from ..kernels.texture_pyramid import cached_table, pool_level

WRAP_MODES = ("repeat", "clamp", "mirror")

FILTERS = ("auto", "nearest", "bilinear", "trilinear")


def build_mipmaps(tex: torch.Tensor, max_levels: Optional[int] = None) -> List[torch.Tensor]:
    """Return the mip pyramid ``[tex, tex/2, ..., 1x1]`` of ``tex [..., H, W, C]`` by 2x2 box filtering.

    Odd sizes round up (the last row / column is averaged with what exists). Differentiable in ``tex``.
    """
    levels = [tex]
    while (max_levels is None or len(levels) < max_levels) and max(levels[-1].shape[-3:-1]) > 1:
        levels.append(pool_level(levels[-1]))
    return levels


def texture(
    tex: torch.Tensor,
    uv: torch.Tensor,
    *,
    uv_derivs: Optional[torch.Tensor] = None,
    filter: Literal["auto", "nearest", "bilinear", "trilinear"] = "auto",
    wrap: Literal["repeat", "clamp", "mirror"] = "repeat",
    mipmaps: Optional[Sequence[torch.Tensor]] = None,
    max_mip_level: Optional[int] = None,
    lod_bias: float = 0.0,
    mask: Optional[torch.Tensor] = None,
    backend: Literal["auto", "kernel", "torch"] = "auto",
    texel_transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
) -> torch.Tensor:
    """Sample a texture at texture coordinates.

    Args:
        tex: ``[Ht, Wt, C]`` texture shared by all samples, or ``[..., Ht, Wt, C]`` with the leading dims of
            ``uv`` (one texture per view / mesh); channel-last, ``C >= 1``. A texture of at most 4 rows with
            more than 4 channels (``[3, 1024, 1024]``) is refused as a likely channel-first image: pass
            ``tex.permute(1, 2, 0)``.
        uv: ``[..., H, W, 2]`` texture coordinates; ``(0, 0)`` is the top-left corner of the texture, texel
            (i, j) has its centre at ``((j + 0.5) / Wt, (i + 0.5) / Ht)``.
        uv_derivs: ``[..., H, W, 2, 2]`` screen-space derivatives ``d uv / d(pixel u, pixel v)``, as returned
            by :func:`lumigrad.interpolate` with ``return_derivatives=True``; they select the mip level.
        filter: ``"nearest"``, ``"bilinear"``, ``"trilinear"`` (bilinear in the two nearest mip levels, blended
            by the level of detail), or ``"auto"``: trilinear when ``uv_derivs`` is given, else bilinear.
        wrap: what happens outside [0, 1]: ``"repeat"`` tiles, ``"clamp"`` extends the edge texels,
            ``"mirror"`` reflects.
        mipmaps: a prebuilt pyramid from :func:`build_mipmaps` (saves rebuilding it every call when the
            texture is constant); built from ``tex`` when omitted. Every level is checked like ``tex``: same
            dims, batch dims, channels, dtype and device, at least one texel, no NaN / Inf; level 0 has
            ``tex``'s shape. The flattened table and the NaN / Inf verdict are cached per pyramid (keyed like
            the texel cache below, on ``tex`` and every level) when no level requires gradients, so a prebuilt
            pyramid costs only the shape checks on later calls.
        max_mip_level: the coarsest level used (0 = full resolution only), an int ``>= 0`` or ``None`` (all).
        lod_bias: added to the level of detail ``lod = log2(max(|d uv/dx|, |d uv/dy|) in texels)``; finite.
        mask: ``[..., H, W]`` bool; samples where it is False are skipped (zero output, no gradient), e.g.
            ``frags.mask`` so that background pixels cost nothing.
        backend: ``"kernel"``: the compiled kernel with its explicit backward, for ``tex`` and ``uv`` both
            float32 or both float64 (the default for those); ``"torch"``: pure PyTorch, any float dtype (the
            default otherwise, and the reference twin).
        texel_transform: an *elementwise* function applied to the texels before filtering (e.g. an sRGB
            decode); each output element must depend only on the input element at the same index. Its result,
            pyramid and slope are cached with the texture (below). Not combinable with ``mipmaps``.

    **Caching:** the texel table (``texel_transform(tex)`` and, for trilinear filtering, its mip pyramid) is
    built once per texel update and reused while ``tex`` lives and is unchanged: the key is the tensor's
    identity, its version counter (bumped by every in-place change, e.g. an optimiser step), its data pointer,
    shape, strides, dtype and device, the filter, ``max_mip_level`` and ``texel_transform``. A texture that
    requires gradients and has at least ``GRAD_CACHE_MIN_ELEMENTS`` elements reuses the cached values too; its
    backward is the fused adjoint of the pyramid (one broadcast add per level) times the cached slope of
    ``texel_transform``. Not detected: writes that bypass the version counter (``tex.data.mul_(2)``, writes
    through ``numpy()`` or DLPack views, ``torch.autograd.gradcheck``'s perturbations); assigning
    ``tex.data = other`` is detected through the data pointer unless ``other`` reuses the same address. Small
    textures that require gradients (where rebuilding costs little and gradcheck is practical) are rebuilt
    every call; ``with lumigrad.raster.texel_cache(False):`` turns the cache off altogether. On the CPU the
    kernel backward of a cached texture takes its table-gradient scratch from ``kernels.buffer_pool`` (at most
    ``MAX_BUFFERS`` buffers kept), and ``tex``'s gradient is level 0's rows of that scratch: once the gradient
    is dropped (``zero_grad``) the next backward reuses the same pages instead of faulting in fresh ones.

    Returns:
        ``[..., H, W, C]`` filtered texture values.

    Raises:
        TypeError: non-tensors, integer dtypes, a non-bool ``mask``, a mip level of another dtype, a
            non-integer ``max_mip_level``, ``backend="kernel"`` with other dtypes (above), a non-callable
            ``texel_transform``.
        ValueError: wrong shapes, zero texels or channels, a channel-first ``tex``, NaN / Inf in ``uv``,
            ``uv_derivs``, ``tex`` or any mip level, ``max_mip_level < 0``, a NaN / Inf ``lod_bias``, mixed
            devices.

    **Differentiability:** w.r.t. ``tex`` (every texel that contributes gets its filter weight) and w.r.t.
    ``uv`` (through the bilinear weights; piecewise-linear, continuous across texel and wrap boundaries);
    with trilinear filtering also w.r.t. ``uv_derivs`` through the level-of-detail blend. ``"nearest"`` gives
    no gradient to ``uv``.

    Example: a 1x2 texture ``[[0], [1]]`` (Ht=1, Wt=2) sampled at ``u = 0.5`` (between the texel centres
    0.25 and 0.75) gives 0.5 bilinearly.
    """
    check_choice(filter, "filter", FILTERS)
    check_choice(wrap, "wrap", WRAP_MODES)
    check_tensor(uv, "uv", trailing=(None, None, 2), floating=True)
    check_tensor(tex, "tex", trailing=(None, None, None), floating=True, device=uv.device)
    check_texture_layout(tex, "tex")
    if max_mip_level is not None:
        if isinstance(max_mip_level, bool) or not isinstance(max_mip_level, int):
            raise TypeError(f"max_mip_level must be an int or None; got {type(max_mip_level).__name__}")
        if max_mip_level < 0:
            raise ValueError(f"max_mip_level must be >= 0 (0 = full resolution only) or None; got {max_mip_level}")
    lod_bias = check_number(lod_bias, "lod_bias")
    check_tensor(uv, "uv", finite=True)
    if filter == "auto":
        filter = "trilinear" if uv_derivs is not None else "bilinear"
    if texel_transform is not None and not callable(texel_transform):
        raise TypeError(f"texel_transform must be callable or None; got {type(texel_transform).__name__}")
    if mipmaps is not None:
        if texel_transform is not None:
            raise ValueError("texel_transform cannot be combined with mipmaps (the pyramid is built from "
                             "the transformed texels); pass one of them")
        mipmaps = _pyramid_table(tex, mipmaps, filter, max_mip_level)
    elif _cached_values(tex, filter, max_mip_level, texel_transform) is None:
        check_tensor(tex, "tex", finite=True)
    sample_batch = uv.shape[:-3]
    if tex.dim() > 3 and tex.shape[:-3] != sample_batch:
        raise ValueError(f"tex has batch dims {tuple(tex.shape[:-3])} but uv has {tuple(sample_batch)}; give one "
                         "[Ht, Wt, C] texture or one per batch entry")
    if filter == "trilinear" and uv_derivs is None:
        raise ValueError("filter='trilinear' needs uv_derivs (interpolate(..., return_derivatives=True))")
    if uv_derivs is not None:
        check_tensor(uv_derivs, "uv_derivs", trailing=(None, None, 2, 2), floating=True, finite=True,
                     device=uv.device)
        if uv_derivs.shape[:-2] != uv.shape[:-1]:
            raise ValueError(f"uv_derivs must have shape {tuple(uv.shape[:-1]) + (2, 2)}; got {tuple(uv_derivs.shape)}")

    if mask is not None:
        check_tensor(mask, "mask", device=uv.device)
        if mask.dtype != torch.bool:
            raise TypeError(f"mask must be a bool tensor (e.g. frags.mask); got {mask.dtype}")
        if mask.shape != uv.shape[:-1]:
            raise ValueError(f"mask must have shape {tuple(uv.shape[:-1])}; got {tuple(mask.shape)}")
    check_choice(backend, "backend", ("auto", "kernel", "torch"))
    use_kernel = backend == "kernel" or (backend == "auto" and _kernel_dtypes(tex, uv))
    if use_kernel and not _kernel_dtypes(tex, uv):
        raise TypeError(f"backend='kernel' needs tex and uv both float32 or both float64; got {tex.dtype} and "
                        f"{uv.dtype}")
    return _sample(tex, uv, uv_derivs, filter, wrap, mipmaps, max_mip_level, lod_bias, mask, use_kernel,
                   texel_transform)


def texture_unchecked(tex: torch.Tensor, uv: torch.Tensor, *, uv_derivs: Optional[torch.Tensor] = None,
                      wrap: str = "repeat", mask: Optional[torch.Tensor] = None,
                      texel_transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> torch.Tensor:
    """:func:`texture` with its defaults (``filter="auto"``, no explicit mip maps, ``lod_bias=0``, backend
    ``"auto"``) and without its checks, for pipelines that validated ``tex`` once (a material's textures,
    sampled every frame); same results."""
    filter = "trilinear" if uv_derivs is not None else "bilinear"
    use_kernel = _kernel_dtypes(tex, uv)
    return _sample(tex, uv, uv_derivs, filter, wrap, None, None, 0.0, mask, use_kernel, texel_transform)


def _kernel_dtypes(tex: torch.Tensor, uv: torch.Tensor) -> bool:
    """Whether the compiled kernels take these inputs: both float32 or both float64."""
    return tex.dtype == uv.dtype and tex.dtype in (torch.float32, torch.float64)


def _sample(tex, uv, uv_derivs, filter, wrap, mipmaps, max_mip_level, lod_bias, mask, use_kernel: bool,
            transform) -> torch.Tensor:
    """The sampling itself, on validated inputs."""
    out_shape = uv.shape[:-1] + (tex.shape[-1],)
    per_sample = uv.shape[-3] * uv.shape[-2]
    flat_uv = uv.reshape(-1, 2)
    num_tex = 1 if tex.dim() == 3 else int(torch.tensor(tex.shape[:-3]).prod())
    if mipmaps is not None:  # the table of a checked, given pyramid (``_pyramid_table``)
        table = mipmaps
    else:
        table = _cached_table(tex, filter, max_mip_level, transform, num_tex)
    levels = table.num_levels
    flat_mask = None if mask is None else mask.reshape(-1)

    if use_kernel:
        duv = None if filter != "trilinear" else uv_derivs.reshape(-1, 4).to(uv.dtype)
        source = None if table.source is None else table.source + (table.shapes,)
        out = sample_texture(table.table, table.heights, table.widths, table.offsets, flat_uv, duv, flat_mask,
                             per_sample if num_tex > 1 else 0, filter, wrap, lod_bias, source=source)
        return out.reshape(out_shape)
    if table.source is not None:
        source_tex, slope = table.source
        table = table.with_table(cached_table(source_tex, table.table, slope, table.shapes))

    owner = None if tex.dim() == 3 else torch.arange(flat_uv.shape[0], device=uv.device) // per_sample
    if filter == "nearest":
        out = table.table.index_select(0, table.nearest_tap(flat_uv, owner, wrap))
    elif filter == "bilinear":
        level = torch.zeros(flat_uv.shape[0], dtype=torch.long, device=uv.device)
        out = table.gather(*table.bilinear_taps(flat_uv, owner, level, wrap))
    else:
        lod = _level_of_detail(uv_derivs.reshape(-1, 2, 2), tex.shape[-3], tex.shape[-2]) + lod_bias
        lod = lod.clamp(0, levels - 1)
        lo = lod.detach().floor().long().clamp(max=levels - 1)
        frac = (lod - lo.to(lod.dtype))[:, None]
        idx_f, w_f = table.bilinear_taps(flat_uv, owner, lo, wrap)
        idx_c, w_c = table.bilinear_taps(flat_uv, owner, (lo + 1).clamp(max=levels - 1), wrap)
        out = table.gather(torch.cat([idx_f, idx_c], 1), torch.cat([w_f * (1 - frac), w_c * frac], 1))
    if flat_mask is not None:
        out = out * flat_mask[:, None].to(out.dtype)
    return out.reshape(out_shape)


def _pyramid_table(tex: torch.Tensor, mipmaps, filter: str, max_mip_level: Optional[int]) -> "_TexelTable":
    """The texel table of a given pyramid, after :func:`_check_mipmaps`; the table and the finiteness verdict
    are cached per pyramid (below), so a prebuilt pyramid costs only the shape checks per call."""
    levels = _check_mipmaps(mipmaps, tex)
    num_tex = 1 if tex.dim() == 3 else int(torch.tensor(tex.shape[:-3]).prod())
    # Tensors that carry a graph are never cached: their table must stay differentiable.
    cacheable = _CACHE_ON[0] and not any(t.requires_grad for t in [tex] + levels)
    key = _pyramid_key(tex, levels, filter, max_mip_level)
    hit = _PYRAMIDS.get(id(tex)) if cacheable else None
    if hit is not None and hit[1] == key and all(ref() is t for ref, t in zip(hit[0], [tex] + levels)):
        return hit[2]
    check_all_finite([("tex", tex)] + [(f"mipmaps[{k}]", level) for k, level in enumerate(levels)])
    if not cacheable:
        return _texel_table(tex, filter, levels, max_mip_level, num_tex)
    # Detached: a cached table that viewed ``tex`` itself (one level) would keep it alive forever.
    table = _texel_table(tex.detach(), filter, [t.detach() for t in levels], max_mip_level, num_tex)
    if id(tex) not in _PYRAMIDS:
        weakref.finalize(tex, _PYRAMIDS.pop, id(tex), None)
    _PYRAMIDS[id(tex)] = ([weakref.ref(t) for t in [tex] + levels], key, table)
    return table


# Tables of explicit pyramids, one per texture while it lives (the latest pyramid given with it):
# ``id(tex) -> (weakrefs to tex and the levels, key, table)``.
_PYRAMIDS: Dict[int, tuple] = {}


def _pyramid_key(tex, levels, filter, max_mip_level) -> tuple:
    """What a cached pyramid table depends on: every tensor's texel-cache key (version, data pointer, layout;
    their identities are checked through the entry's weak references)."""
    return tuple(_cache_key(t, filter, max_mip_level, None) for t in [tex] + levels)


def _check_mipmaps(mipmaps, tex: torch.Tensor) -> List[torch.Tensor]:
    """Every given level: a float tensor like ``tex`` (dims, batch dims, channels, dtype, device), at least one
    texel; level 0 has ``tex``'s shape. Finiteness is checked with the table (one host sync for all levels)."""
    if isinstance(mipmaps, torch.Tensor) or not isinstance(mipmaps, (list, tuple)):
        raise TypeError(f"mipmaps must be a list of tensors from build_mipmaps(tex); got {type(mipmaps).__name__}")
    levels = list(mipmaps)
    if not levels:
        raise ValueError("mipmaps is empty; pass build_mipmaps(tex) or None")
    for k, level in enumerate(levels):
        name = f"mipmaps[{k}]"
        check_tensor(level, name, trailing=(None, None, tex.shape[-1]), min_dims=tex.dim(), max_dims=tex.dim(),
                     floating=True, device=tex.device)
        if level.dtype != tex.dtype:
            raise TypeError(f"{name} is {level.dtype} but tex is {tex.dtype}; build the pyramid from this texture")
        if level.shape[:-3] != tex.shape[:-3]:
            raise ValueError(f"{name} has batch dims {tuple(level.shape[:-3])} but tex has {tuple(tex.shape[:-3])}")
        if level.shape[-3] == 0 or level.shape[-2] == 0:
            raise ValueError(f"{name} must have at least one texel; got shape {tuple(level.shape)}")
    if levels[0].shape != tex.shape:
        raise ValueError(f"mipmaps[0] has shape {tuple(levels[0].shape)} but tex has {tuple(tex.shape)}; "
                         "pass build_mipmaps(tex) of this texture")
    return levels


def _texel_table(tex, filter, mipmaps, max_mip_level, num_tex) -> "_TexelTable":
    if filter == "trilinear":
        levels = list(mipmaps) if mipmaps is not None else build_mipmaps(tex)
        if max_mip_level is not None:
            levels = levels[: max(1, max_mip_level + 1)]
    else:
        levels = [tex]
    return _TexelTable([t.reshape(num_tex, *t.shape[-3:]) for t in levels])


# Texel tables (transformed, mip-mapped, flattened) of textures, reused while the tensor lives and is not
# modified (see ``texture``'s "Caching"). Keyed by id with a weak reference, since tensors compare elementwise
# and cannot be dict keys themselves: ``id -> (weakref, key, table of forward values, transform's slope)``.
_TABLES: Dict[int, tuple] = {}

#: Textures that require gradients are cached from this many elements on (``Ht * Wt * C`` times the batch).
GRAD_CACHE_MIN_ELEMENTS = 1 << 16

_CACHE_ON = [True]


@contextlib.contextmanager
def texel_cache(enabled: bool):
    """Within the block, texel tables are cached (``True``, the default outside) or rebuilt every call
    (``False``: e.g. to gradcheck a large texture whose perturbations bypass the version counter)."""
    previous = _CACHE_ON[0]
    _CACHE_ON[0] = bool(enabled)
    try:
        yield
    finally:
        _CACHE_ON[0] = previous


def _cache_key(tex, filter, max_mip_level, transform) -> tuple:
    return (tex._version, tex.data_ptr(), tex.shape, tex.stride(), tex.dtype, tex.device, filter == "trilinear",
            max_mip_level, transform)


def _cached_values(tex, filter, max_mip_level, transform) -> Optional[tuple]:
    """``(table, slope)`` cached for ``tex`` under the current key, or None."""
    if not _CACHE_ON[0]:
        return None
    hit = _TABLES.get(id(tex))
    if hit is None or hit[0]() is not tex or hit[1] != _cache_key(tex, filter, max_mip_level, transform):
        return None
    return hit[2], hit[3]


def _cached_table(tex, filter, max_mip_level, transform, num_tex) -> "_TexelTable":
    """The texel table of ``transform(tex)`` from the cache (built and remembered on a miss), attached to the
    autograd graph through the fused adjoint when ``tex`` requires gradients."""
    needs_grad = tex.requires_grad and torch.is_grad_enabled()
    if not _CACHE_ON[0] or (tex.requires_grad and tex.numel() < GRAD_CACHE_MIN_ELEMENTS):
        if transform is not None:
            tex = transform(tex)
        return _texel_table(tex, filter, None, max_mip_level, num_tex)
    hit = _cached_values(tex, filter, max_mip_level, transform)
    if hit is None or (needs_grad and transform is not None and hit[1] is None):
        hit = _build_values(tex, filter, max_mip_level, transform, num_tex, needs_grad)
        _remember(tex, filter, max_mip_level, transform, hit)
    table, slope = hit
    if not needs_grad:
        return table
    return table.with_source(tex, slope)


def _build_values(tex, filter, max_mip_level, transform, num_tex, with_slope: bool) -> tuple:
    """``(table, slope)``: the texel table of ``transform(tex)`` (forward values, no graph) and, when
    ``with_slope`` and there is a transform, its elementwise derivative at ``tex``."""
    # The table must not hold views whose base is ``tex`` itself, or ``tex`` would never be freed.
    base = tex.detach()
    slope = None
    if transform is None:
        texels = base
    elif with_slope:
        x = tex.detach().requires_grad_(True)
        with torch.enable_grad():
            y = transform(x)
        slope = torch.autograd.grad(y, x, torch.ones_like(y))[0]
        texels = y.detach()
    else:
        with torch.no_grad():
            texels = transform(base)
    with torch.no_grad():
        return _texel_table(texels, filter, None, max_mip_level, num_tex), slope


def _remember(tex, filter, max_mip_level, transform, values) -> None:
    key = id(tex)
    if key not in _TABLES:
        weakref.finalize(tex, _TABLES.pop, key, None)
    _TABLES[key] = (weakref.ref(tex), _cache_key(tex, filter, max_mip_level, transform)) + tuple(values)


def _level_of_detail(duv: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``log2`` of the larger screen-space footprint in texels; ``duv [S, 2 (u, v), 2 (d/dx, d/dy)]``."""
    scale = torch.tensor([width, height], dtype=duv.dtype, device=duv.device)[:, None]
    d = duv * scale
    rho2 = torch.maximum((d[..., 0] ** 2).sum(-1), (d[..., 1] ** 2).sum(-1))
    return 0.5 * torch.log2(rho2.clamp_min(1e-20))


def _wrap_index(i: torch.Tensor, size, wrap: str) -> torch.Tensor:
    if wrap == "repeat":
        return torch.remainder(i, size)
    if wrap == "clamp":
        return torch.minimum(i.clamp_min(0), size - 1) if isinstance(size, torch.Tensor) else i.clamp(0, size - 1)
    m = torch.remainder(i, 2 * size)
    return torch.where(m < size, m, 2 * size - 1 - m)


class _TexelTable:
    """Mip levels of ``Nt`` textures flattened into one ``[texels, C]`` table, addressed per sample.

    Taps are gathered with one ``index_select`` and blended with one weighted sum, so the backward pass is
    a single scatter-add into the table (and on through the pyramid's pooling into ``tex``).
    """

    def __init__(self, levels: Sequence[torch.Tensor]):  # each [Nt, H_l, W_l, C]
        dev = levels[0].device
        c = levels[0].shape[-1]
        self.table = torch.cat([lv.reshape(-1, c) for lv in levels]) if len(levels) > 1 else levels[0].reshape(-1, c)
        self.heights = torch.tensor([lv.shape[1] for lv in levels], device=dev)
        self.widths = torch.tensor([lv.shape[2] for lv in levels], device=dev)
        sizes = [lv.shape[0] * lv.shape[1] * lv.shape[2] for lv in levels]
        self.offsets = torch.tensor([0] + sizes[:-1], device=dev).cumsum(0)
        self.shapes = [(lv.shape[1], lv.shape[2]) for lv in levels]
        self.single = len(levels) == 1
        self.num_levels = len(levels)
        self.source = None  # (tex, slope): the values are the cached pyramid of tex, gradients go to tex

    def with_source(self, tex: torch.Tensor, slope: Optional[torch.Tensor]) -> "_TexelTable":
        """This table, its (constant, cached) values differentiable w.r.t. ``tex`` through the pyramid's adjoint
        (``slope``: the texel transform's elementwise derivative, or None)."""
        other = copy.copy(self)
        other.source = (tex, slope)
        return other

    def with_table(self, table: torch.Tensor) -> "_TexelTable":
        """This table's addressing with other texel values ``table`` (same layout)."""
        other = copy.copy(self)
        other.table = table
        other.source = None
        return other

    def _level(self, level, owner):
        if self.single:
            h, w = int(self.heights[0]), int(self.widths[0])
            base = 0
        else:
            h, w, base = self.heights[level], self.widths[level], self.offsets[level]
        if owner is not None:
            base = base + owner * (h * w)
        return h, w, base

    def nearest_tap(self, uv, owner, wrap):
        h, w, base = self._level(None, owner)
        ix = _wrap_index((uv[:, 0] * w).detach().floor().long(), w, wrap)
        iy = _wrap_index((uv[:, 1] * h).detach().floor().long(), h, wrap)
        return base + iy * w + ix

    def bilinear_taps(self, uv, owner, level, wrap):
        """Texel indices ``[S, 4]`` and weights ``[S, 4]`` (differentiable in ``uv``) at mip ``level [S]``."""
        h, w, base = self._level(level, owner)
        x = uv[:, 0] * w - 0.5
        y = uv[:, 1] * h - 0.5
        x0 = x.detach().floor()
        y0 = y.detach().floor()
        fx = x - x0
        fy = y - y0
        ix0, iy0 = x0.long(), y0.long()
        c0, c1 = _wrap_index(ix0, w, wrap), _wrap_index(ix0 + 1, w, wrap)
        r0 = _wrap_index(iy0, h, wrap) * w + base
        r1 = _wrap_index(iy0 + 1, h, wrap) * w + base
        idx = torch.stack([r0 + c0, r0 + c1, r1 + c0, r1 + c1], 1)
        gx, gy = 1 - fx, 1 - fy
        weights = torch.stack([gx * gy, fx * gy, gx * fy, fx * fy], 1)
        return idx, weights

    def gather(self, idx, weights):
        """``sum_k weights[:, k] * table[idx[:, k]]`` -> ``[S, C]``."""
        taps = self.table.index_select(0, idx.reshape(-1)).reshape(idx.shape + (self.table.shape[-1],))
        return torch.einsum("sk,skc->sc", weights.to(taps.dtype), taps)
