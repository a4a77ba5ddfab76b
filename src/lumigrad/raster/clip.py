"""Near-plane clipping of triangles in the camera frame (no autograd: it only feeds the visibility kernel).

A triangle crossing ``z = near`` is cut, not dropped and not wrapped around through infinity: the part in
front of the plane becomes one triangle (one vertex in front) or two (two in front), with the original
winding, tagged with the view and face they came from.
"""

from __future__ import annotations

from typing import Tuple

import torch


@torch.no_grad()
def clip_near(corners: torch.Tensor, near: float) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clip triangles against the plane ``z = near``.

    Args:
        corners: ``[M, 3, 3]`` camera-frame triangle corners of triangles that cross the plane
            (at least one corner in front, at least one behind).
        near: the near-plane depth.

    Returns:
        ``(clipped [E, 3, 3], source [E])``: triangles entirely at ``z >= near`` and, for each, the row of
        ``corners`` it came from. E lies between M and 2 M.
    """
    inside = corners[..., 2] >= near  # [M, 3]
    n_in = inside.sum(-1)
    out = []
    src = []
    rows = torch.arange(corners.shape[0], device=corners.device)
    for count, lone_is_inside in ((1, True), (2, False)):
        sel = rows[n_in == count]
        if sel.numel() == 0:
            continue
        tri = corners[sel]
        flags = inside[sel] if lone_is_inside else ~inside[sel]
        k = flags.to(torch.int64).argmax(-1)  # the lone vertex, rotated to the front keeps the winding
        order = (k[:, None] + torch.arange(3, device=tri.device)) % 3
        tri = torch.gather(tri, 1, order[..., None].expand(-1, -1, 3))
        a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
        p_ab = _cut(a, b, near)
        p_ac = _cut(a, c, near)
        if lone_is_inside:  # a in front: keep (a, p_ab, p_ac)
            out.append(torch.stack([a, p_ab, p_ac], 1))
            src.append(sel)
        else:  # a behind: quad (p_ab, b, c, p_ac) as two triangles fanned from p_ab
            out.append(torch.stack([p_ab, b, c], 1))
            out.append(torch.stack([p_ab, c, p_ac], 1))
            src += [sel, sel]
    if not out:
        return corners.new_zeros(0, 3, 3), rows[:0]
    return torch.cat(out), torch.cat(src)


def _cut(a: torch.Tensor, b: torch.Tensor, near: float) -> torch.Tensor:
    """Point of segment a-b at depth ``near`` (the segment crosses the plane)."""
    t = (near - a[:, 2]) / (b[:, 2] - a[:, 2])
    p = a + t[:, None] * (b - a)
    p[:, 2] = near  # exact, so the kernel's depth test never rejects the cut edge by rounding
    return p
