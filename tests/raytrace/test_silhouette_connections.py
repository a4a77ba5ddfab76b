"""Silhouettes seen beyond the first hit: the mesh's edges, the setting, and the gradient of a black card that
occludes the light bounced between two walls, seen only from the wall the camera sees, against central finite
differences."""

import math

import pytest
import torch

import lumigrad as lg
from lumigrad.integrators.path import PathIntegrator
from lumigrad.raytrace.shadow_edges import edge_table
from lumigrad.shading import Material

F64 = torch.float64
SIZE = 12


def _material(rgb):
    rgb = torch.as_tensor(rgb, dtype=F64)
    return Material(base_color_factor=torch.cat([rgb, torch.ones(1, dtype=F64)]), metallic_factor=0.0,
                    roughness_factor=1.0, ior=1.0)


def _scene(card_offset):
    """Two diffuse walls facing each other (z = -1, seen by :data:`CAMERA`, and z = 1.5, behind it), a point light
    between them at height 1 and a black double-sided 0.5 x 0.5 card in the plane y = 1 at ``(x, z) = (0.7, 0) +
    card_offset``. The card lies in a plane through the light, so it casts no shadow anywhere; the camera does not
    see it (it looks at the middle of the wall z = -1). It only hides the far wall from points of the near one:
    its silhouette seen from the first hit (paths camera -> near wall -> far wall -> light) is the only
    visibility that moves with it."""
    scene = lg.Scene()
    h = 1.5
    near = torch.tensor([[-h, 0, -1.0], [h, 0, -1.0], [h, 2, -1.0], [-h, 2, -1.0]], dtype=F64)
    scene.add_mesh("near", lg.SceneMesh(near, torch.tensor([[0, 1, 2], [0, 2, 3]]), _material((0.8, 0.8, 0.8))))
    far = torch.tensor([[-h, 0, 1.5], [h, 0, 1.5], [h, 2, 1.5], [-h, 2, 1.5]], dtype=F64)
    scene.add_mesh("far", lg.SceneMesh(far, torch.tensor([[0, 2, 1], [0, 3, 2]]), _material((0.9, 0.6, 0.3))))
    c = 0.25
    card = torch.tensor([[-c, 0, -c], [c, 0, -c], [c, 0, c], [-c, 0, c]], dtype=F64)
    shift = torch.stack([card_offset[0], torch.zeros((), dtype=F64), card_offset[1]]) + torch.tensor(
        [0.7, 1.0, 0.0], dtype=F64)
    scene.add_mesh("card", lg.SceneMesh(card + shift, torch.tensor([[0, 2, 1], [0, 3, 2]]),
                                        _material((0.0, 0.0, 0.0)), double_sided=True))
    scene.add_light("key", lg.PointLight(torch.tensor([0.0, 1.0, 0.2], dtype=F64), torch.tensor(3.0, dtype=F64)))
    return scene


CAMERA = lg.Camera.look_at([0.0, 1.0, 1.4], [0.0, 1.0, -1.0], fov_y=0.25, width=SIZE, height=SIZE).to(dtype=F64)


def _weights():
    """A smooth per-pixel, per-channel weighting of the image."""
    r = (torch.arange(SIZE, dtype=F64) + 0.5) / SIZE
    return 0.5 + r[None, :, None] + 0.4 * torch.sin(3 * r)[:, None, None] * torch.tensor([1.0, 0.5, -0.5], dtype=F64)


#: The finite differences' renders: float32 (the fused kernel: 10x the float64 twin's speed; its samples are not the
#: float64 twin's at the same seed: another draw of the same estimate), the same samples at both ends (one seed),
#: four seeds.
FD_DTYPE = torch.float32
FD_SEEDS = (7, 8, 9, 10)


def _loss(offset, spp, max_depth=3, seed=0, dtype=F64, **kw):
    image = lg.render(_scene(offset).to(dtype=dtype), CAMERA.to(dtype=dtype), integrator="path", max_depth=max_depth,
                      spp=spp, seed=seed, **kw).rgb
    return (image.to(F64) * _weights()).sum()


def _gradients(seeds, **kw):
    """``[seeds, 2]``: the card's (x, z) gradients of backward passes with the ``seeds`` (4 spp each)."""
    out = []
    for s in seeds:
        offset = torch.zeros(2, dtype=F64).requires_grad_()
        _loss(offset, 1, seed_grad=s, spp_grad=4, **kw).backward()
        out.append(offset.grad.clone())
    return torch.stack(out)


def test_edge_table_lists_each_edge_once_with_its_faces():
    """Two triangles of a quad: four boundary edges (one face) and the shared diagonal (both faces)."""
    quad = torch.tensor([[0.0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=F64)
    a, b, f1, f2, seam = edge_table(quad, torch.tensor([[0, 1, 2], [0, 2, 3]], dtype=torch.int32))
    assert not bool(seam.any())
    pairs = sorted((min(x, y), max(x, y), p, q) for x, y, p, q in zip(a.tolist(), b.tolist(), f1.tolist(),
                                                                       f2.tolist()))
    assert pairs == [(0, 1, 0, -1), (0, 2, 0, 1), (0, 3, 1, -1), (1, 2, 0, -1), (2, 3, 1, -1)]
    # the same quad with the second triangle's corners split off (a seam, as a Mitsuba cube's faces): the
    # diagonal is still one edge between the two faces, by position
    split = torch.cat([quad, quad[[0, 2]]])  # vertices 4 and 5 repeat 0 and 2
    a, b, f1, f2, seam = edge_table(split, torch.tensor([[0, 1, 2], [4, 5, 3]], dtype=torch.int32))
    assert len(a) == 5 and sorted(zip(f1.tolist(), f2.tolist())).count((0, 1)) == 1 and int(seam.sum()) == 1


def test_deep_silhouette_samples_must_be_a_non_negative_int():
    with pytest.raises(ValueError, match="deep_silhouette_samples"):
        PathIntegrator(deep_silhouette_samples=-1)
    with pytest.raises(ValueError, match="deep_silhouette_samples"):
        PathIntegrator(deep_silhouette_samples=True)


def test_a_card_hiding_bounced_light_moves_like_finite_differences():
    """The card of :func:`_scene` (``max_depth = 3``): its x, z gradient (mean of 32 backward passes at 4 spp,
    4096 silhouette samples) against central differences (4096 spp, step 0.02, mean of seeds 7 to 10, float32
    renders) within three standard errors of their difference (the spread over the backward seeds and that of the
    mean of the differences) plus 2 %. The premise: with direct light alone (``max_depth = 2``) the differences are
    0 (no shadow moves), and without the term the gradient is exactly 0 (nothing else moves with the card), far from
    the differences in x.
    Measured: see docs/benchmarks.md, "Silhouettes beyond the first hit (issue 14), branch deepsil"."""
    step = 0.02 * torch.eye(2, dtype=F64)
    for k in range(2):
        assert float(_loss(step[k], 64, max_depth=2, seed=7) - _loss(-step[k], 64, max_depth=2, seed=7)) == 0
    plain = _gradients(range(100, 102), deep_silhouette_samples=0)
    assert plain.abs().max() == 0
    grads = _gradients(range(100, 132), deep_silhouette_samples=4096)
    fds = torch.tensor([[float((_loss(step[k], 4096, seed=seed, dtype=FD_DTYPE)
                                - _loss(-step[k], 4096, seed=seed, dtype=FD_DTYPE)) / 0.04) for k in range(2)]
                        for seed in FD_SEEDS], dtype=F64)
    for k in range(2):
        fd = float(fds[:, k].mean())
        standard_error = math.hypot(float(grads[:, k].std()) / math.sqrt(grads.shape[0]),
                                    float(fds[:, k].std()) / math.sqrt(fds.shape[0]))
        tol = 3 * standard_error + 0.02 * abs(fd)
        print(f"card {'xz'[k]}: gradient {float(grads[:, k].mean()):.4f} +- "
              f"{float(grads[:, k].std()) / math.sqrt(grads.shape[0]):.4f}, "
              f"differences {' / '.join(f'{x:.4f}' for x in fds[:, k].tolist())}, tolerance {tol:.4f}")
        assert abs(float(grads[:, k].mean()) - fd) < tol, (k, float(grads[:, k].mean()), fd, tol)
        if k == 0:  # x: the card's motion across the far wall, the term's largest share
            assert abs(fd) > 2 * tol, (fd, tol)
