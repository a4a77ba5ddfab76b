"""``NerfField``: a radiance field assembled from an encoding (hash grid or dense grid) and two MLP heads.

::

    points -> encoding (hash grid | dense grid) -> density MLP -> (raw sigma, geometry feature [G])
    sigma = activation(raw sigma)                           (softplus by default; 0 outside the box)
    (geometry feature, SH(direction)) -> colour MLP -> sigmoid -> rgb in [0, 1]

This is instant-ngp's / nerfacto's layout: the view direction enters only the colour head, so density (and
the occupancy grid built from it) is view independent.

**Precision.** The encodings run in float32 (their table or grid dtype); the MLPs may run under autocast in
``bfloat16`` (CPU) / ``float16`` (CUDA) (``precision``); the outputs are always returned in float32 (or the
field's dtype when it was converted to float64). ``"auto"`` picks float16 on CUDA; on a CPU with native bfloat16
arithmetic (``avx512_bf16`` or ``amx_bf16`` in ``/proc/cpuinfo``: :func:`cpu_has_native_bf16`) it picks bfloat16,
else float32. On the 2-core AVX512-BF16 EPYC this was written on, the two MLP heads (64 wide) at 65,536 points
took 172 ms forward + backward in bfloat16 against 458 ms in float32 (84 vs 132 ms forward only; medians, load
average 11; ``benchmarks/volume_fields.py``); without native bfloat16 the conversions make it slower than float32.
"""

from __future__ import annotations

import functools
from typing import List, Literal, Tuple

import torch
from torch import nn

from ... import threads
from ..._checks import check_choice, check_number, check_positive_int, check_tensor
from .aabb import AabbLike, as_aabb, to_unit_cube
from .dense_grid import DenseGrid
from .encodings import MAX_SH_DEGREE, sh_encode
from .hash_grid import HashGridEncoding
from .mlp import MLP, density_activation

__all__ = ["NerfField", "cpu_has_native_bf16"]

Precision = Literal["fp32", "bf16", "fp16", "auto"]


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (``avx512_bf16`` / ``amx_bf16`` flags; False off Linux)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


class NerfField(nn.Module):
    """Density and view-dependent colour at world points (layout and precision: module doc).

    Args:
        aabb: the scene box, ``[2, 3]`` or ``[6]`` (world units). Points outside have ``sigma = 0``.
        encoding: ``"hash"`` (:class:`HashGridEncoding`) or ``"dense"`` (:class:`DenseGrid` of features).
        num_levels, features_per_level, log2_table_size, base_resolution, max_resolution: hash grid settings.
        sparse: the hash table gets row-sparse gradients (optimise it with ``torch.optim.SparseAdam``, the
            rest with Adam: :meth:`sparse_parameters` / :meth:`dense_parameters`).
        grid_resolution, grid_channels: dense grid settings (vertices per axis, features per vertex).
        hidden_dim: width of the density MLP's hidden layer.
        geo_feat_dim: width ``G`` of the geometry feature passed to the colour head.
        color_hidden_dim, color_hidden_layers: colour MLP width and depth.
        sh_degree: degree (0..4) of the SH direction encoding.
        density_kind: ``"softplus"``, ``"relu"`` or ``"exp"`` (:func:`density_activation`).
        density_bias: initial bias of the raw density output. The encodings start near zero, so the initial
            density is about ``activation(density_bias)``: ``softplus(-1) = 0.31`` by default, a faint fog that
            every ray sees through at the start but that still passes gradients.
        precision: ``"fp32"``, ``"bf16"``, ``"fp16"`` or ``"auto"``: the MLPs' compute dtype (module doc).

    **Differentiability:** ``sigma`` and ``rgb`` are differentiable w.r.t. all parameters (the hash table
    through a sparse gradient) and w.r.t. ``points`` (piecewise smooth: the grids are trilinear per cell) and
    ``directions`` (smooth). ``sigma``'s cut to 0 at the box boundary is not differentiated.

    Example::

        >>> f = NerfField([-1, -1, -1, 1, 1, 1], num_levels=4, log2_table_size=10, max_resolution=32)
        >>> sigma, rgb = f(torch.zeros(6, 3), torch.tensor([[0.0, 0.0, 1.0]]).expand(6, 3))
        >>> sigma.shape, rgb.shape
        (torch.Size([6]), torch.Size([6, 3]))
    """

    def __init__(self, aabb: AabbLike, *, encoding: Literal["hash", "dense"] = "hash", num_levels: int = 16,
                 features_per_level: int = 2, log2_table_size: int = 19, base_resolution: int = 16,
                 max_resolution: int = 2048, sparse: bool = True, grid_resolution: int = 64,
                 grid_channels: int = 16, hidden_dim: int = 64, geo_feat_dim: int = 15,
                 color_hidden_dim: int = 64, color_hidden_layers: int = 2, sh_degree: int = 4,
                 density_kind: Literal["softplus", "relu", "exp"] = "softplus", density_bias: float = -1.0,
                 precision: Precision = "auto"):
        super().__init__()
        self.register_buffer("aabb", as_aabb(aabb).float())
        check_choice(encoding, "encoding", ("hash", "dense"))
        check_choice(density_kind, "density_kind", ("softplus", "relu", "exp"))
        self.precision = check_choice(precision, "precision", ("fp32", "bf16", "fp16", "auto"))
        if isinstance(sh_degree, bool) or not isinstance(sh_degree, int) or not 0 <= sh_degree <= MAX_SH_DEGREE:
            raise ValueError(f"sh_degree must be an int in [0, {MAX_SH_DEGREE}]; got {sh_degree!r}")
        geo_feat_dim = check_positive_int(geo_feat_dim, "geo_feat_dim")
        if encoding == "hash":
            self.encoder = HashGridEncoding(self.aabb, num_levels=num_levels, features_per_level=features_per_level,
                                            log2_table_size=log2_table_size, base_resolution=base_resolution,
                                            max_resolution=max_resolution, sparse=sparse)
            enc_dim = self.encoder.output_dim
        else:
            self.encoder = DenseGrid(self.aabb, grid_resolution, grid_channels, init_std=1e-2)
            enc_dim = check_positive_int(grid_channels, "grid_channels")
        self.density_kind, self.sh_degree, self.geo_feat_dim = density_kind, sh_degree, geo_feat_dim
        self.density_net = MLP(enc_dim, 1 + geo_feat_dim, hidden_dim, 1, "relu")
        with torch.no_grad():
            self.density_net.net[-1].bias[0] = check_number(density_bias, "density_bias")
        self.color_net = MLP(geo_feat_dim + (sh_degree + 1) ** 2, 3, color_hidden_dim, color_hidden_layers, "relu")

    # ------------------------------------------------------------------------------------------ public API
    def forward(self, points: torch.Tensor, directions: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Evaluate density and colour.

        Args:
            points: ``[..., 3]`` world points, float, finite.
            directions: ``[..., 3]`` view directions (normalised here; the direction the ray travels),
                broadcastable to ``points``.

        Returns:
            ``(sigma [...], rgb [..., 3])``, float32 (float64 for a float64 field): ``sigma >= 0`` (0 outside
            the box), ``rgb`` in ``[0, 1]``.
        """
        ref = self._ref_param()
        check_tensor(points, "points", trailing=(3,), floating=True, finite=True, device=ref.device)
        check_tensor(directions, "directions", trailing=(3,), floating=True, finite=True, device=ref.device)
        try:
            shape = torch.broadcast_shapes(points.shape, directions.shape)
        except RuntimeError:
            raise ValueError(f"directions of shape {tuple(directions.shape)} do not broadcast to points of shape "
                             f"{tuple(points.shape)}") from None
        pts = points.expand(shape).reshape(-1, 3)
        dirs = directions.expand(shape).reshape(-1, 3)
        sigma, geo = self._density_and_feature(pts)
        out_dtype = self._out_dtype()
        with self._autocast(pts.device):
            h = torch.cat([geo, sh_encode(dirs.to(geo.dtype), self.sh_degree)], dim=-1)
            rgb = torch.sigmoid(self.color_net(h).to(out_dtype))
        return sigma.reshape(shape[:-1]), rgb.reshape(*shape[:-1], 3)

    def density(self, points: torch.Tensor) -> torch.Tensor:
        """Density alone (what the occupancy grid and proposal samplers query).

        Args:
            points: ``[..., 3]`` world points, float, finite.

        Returns:
            ``sigma [...]``, float32 (float64 for a float64 field), ``>= 0``, 0 outside the box.
        """
        ref = self._ref_param()
        check_tensor(points, "points", trailing=(3,), floating=True, finite=True, device=ref.device)
        sigma, _ = self._density_and_feature(points.reshape(-1, 3))
        return sigma.reshape(points.shape[:-1])

    def sparse_parameters(self) -> List[nn.Parameter]:
        """Parameters whose gradients are sparse (the hash table when ``sparse``): give these to SparseAdam."""
        if isinstance(self.encoder, HashGridEncoding) and self.encoder.sparse:
            return [self.encoder.table]
        return []

    def dense_parameters(self) -> List[nn.Parameter]:
        """All other parameters (dense gradients): give these to Adam."""
        sparse = {id(p) for p in self.sparse_parameters()}
        return [p for p in self.parameters() if id(p) not in sparse]

    def compute_dtype(self, device: torch.device) -> torch.dtype:
        """The MLPs' compute dtype on ``device`` under this field's ``precision``."""
        if self.precision == "bf16":
            return torch.bfloat16
        if self.precision == "fp16":
            return torch.float16
        if self.precision == "auto" and self._out_dtype() == torch.float32:
            if torch.device(device).type == "cuda":
                return torch.float16
            if cpu_has_native_bf16():
                return torch.bfloat16
        return self._out_dtype()

    # ------------------------------------------------------------------------------------------ internals
    def _ref_param(self) -> torch.Tensor:
        return self.density_net.net[-1].weight

    def _out_dtype(self) -> torch.dtype:
        return torch.float64 if self._ref_param().dtype == torch.float64 else torch.float32

    def _autocast(self, device: torch.device):
        dtype = self.compute_dtype(device)
        enabled = dtype in (torch.bfloat16, torch.float16)
        return torch.autocast(device_type=torch.device(device).type, dtype=dtype, enabled=enabled)

    def _density_and_feature(self, pts: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if pts.device.type == "cpu":
            threads.prepare_cpu()  # PyTorch's thread pool as lumigrad sets it up for its CPU kernels
        if isinstance(self.encoder, HashGridEncoding):
            enc = self.encoder.encode_unchecked(pts)
        else:
            enc = self.encoder(pts)
        out_dtype = self._out_dtype()
        with self._autocast(pts.device):
            raw = self.density_net(enc.to(out_dtype))
        raw = raw.to(out_dtype)
        sigma = density_activation(raw[:, 0], self.density_kind)
        unit = to_unit_cube(pts.to(out_dtype), self.aabb)
        inside = ((unit >= 0) & (unit <= 1)).all(-1)
        sigma = torch.where(inside, sigma, torch.zeros_like(sigma))
        return sigma, raw[:, 1:]
