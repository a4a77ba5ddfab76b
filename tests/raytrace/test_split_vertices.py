"""Edges of meshes whose vertices are split where the shading changes (a Mitsuba ``cube``: 24 corners, four per
face; glTF seams): the path tracer's edge samplers see each such seam once, as one edge between two faces
(``raster/topology.py``'s ``welded_edges``). Seen as two boundary edges, every silhouette of a Mitsuba
cube was sampled twice: an object translation's gradient came out 1.9x its finite differences (-11.5 against
-6.0), a light position's 12 % off (-24.3 against -21.8)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import lumigrad as lg
from lumigrad.io import read_mitsuba_xml
from lumigrad.raster.topology import welded_edges, welded_faces, welded_positions

SCENE = """<scene version="3.0.0">
 <sensor type="perspective"><float name="fov" value="40"/>
  <transform name="to_world"><lookat origin="0.5, 2, -4" target="0, 0, 0" up="0, 1, 0"/></transform>
  <film type="hdrfilm"><integer name="width" value="32"/><integer name="height" value="24"/><rfilter type="box"/>
  </film></sensor>
 <emitter type="point"><point name="position" x="1" y="3" z="-1"/><rgb name="intensity" value="20"/></emitter>
 <shape type="cube" id="box"><transform name="to_world"><scale value="0.5"/><rotate y="1" angle="20"/></transform>
  <bsdf type="diffuse"><rgb name="reflectance" value="0.8, 0.2, 0.2"/></bsdf></shape>
 <shape type="rectangle" id="floor"><transform name="to_world"><scale value="4"/><rotate x="1" angle="-90"/>
  <translate y="-0.5"/></transform><bsdf type="diffuse"><rgb name="reflectance" value="0.5"/></bsdf></shape>
</scene>"""


def _scene(tmp_path: Path) -> lg.Scene:
    path = tmp_path / "cube.xml"
    path.write_text(SCENE)
    return read_mitsuba_xml(path)


def test_a_mitsuba_cube_is_closed_by_position_and_its_face_borders_are_seams(tmp_path):
    box = _scene(tmp_path).meshes["box"]
    assert box.verts.shape[0] == 24  # four corners per face
    edges = welded_edges(box.verts, box.faces)
    assert len(edges.a) == 18 and bool((edges.other >= 0).all())  # closed: 12 borders and 6 diagonals, once each
    assert int(edges.seam.sum()) == 12  # the face borders; the diagonals are no seams
    welded = welded_faces(box.verts, box.faces)
    assert welded.unique().numel() == 8
    torch.testing.assert_close(box.verts[welded], box.verts[box.faces.long()], rtol=0, atol=0)
    # the copies of a position share an edge's gradient equally: 3 copies of each corner
    verts = box.verts.detach().clone().requires_grad_(True)
    moved = welded_positions(verts, box.faces)
    assert torch.equal(moved.detach(), verts.detach())
    moved[0].sum().backward()
    copies = (verts.detach() == verts.detach()[0]).all(-1)
    assert int(copies.sum()) == 3 and torch.allclose(verts.grad[copies], torch.full((3, 3), 1 / 3))
    assert float(verts.grad[~copies].abs().sum()) == 0


def test_an_edge_of_three_faces_is_listed_once():
    """Two objects touching along an edge (a fan of three triangles around it): one listing, not three."""
    verts = torch.tensor([[0.0, 0, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0], [-1, 0, 0]], dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2], [1, 0, 3], [0, 1, 4]])
    edges = welded_edges(verts, faces)
    spine = [(min(a, b), max(a, b)) for a, b in zip(edges.a.tolist(), edges.b.tolist())].count((0, 1))
    assert spine == 1 and len(edges.a) == 7


@pytest.mark.parametrize("what", ["object", "light", "object_seen_from_behind"])
def test_gradients_of_a_mitsuba_cube_match_finite_differences(tmp_path, what):
    """Six 32-spp gradients (direct light) against central differences of 512-spp renders at three seeds:
    within three combined standard errors plus 2 %. ``object_seen_from_behind``: the cube's winding flipped and
    double-sided (the same image; its seams face away from the camera by winding: sampled all the same)."""
    scene = _scene(tmp_path)
    if what == "object_seen_from_behind":
        box = scene.meshes["box"]
        scene.meshes["box"] = dataclasses.replace(box, faces=box.faces[:, [0, 2, 1]].clone(),
                                                  uv_faces=box.uv_faces[:, [0, 2, 1]].clone(), double_sided=True)
    cam = next(iter(scene.cameras.values()))
    weights = torch.rand(24, 32, 3, generator=torch.Generator().manual_seed(0))
    name = "meshes.box.verts" if what != "light" else next(
        k for k in scene.parameters() if k.startswith("lights") and k.endswith("position"))
    base = scene[name].detach().clone()

    def loss(delta, spp, seed):
        scene[name] = base + delta * torch.tensor([1.0, 0, 0])
        return (lg.render(scene, cam, integrator="direct", spp=spp, seed=seed).rgb * weights).sum()

    grads = []
    for seed in range(6):
        delta = torch.zeros((), requires_grad=True)
        loss(delta, 32, seed).backward()
        grads.append(float(delta.grad))
    h = 0.05
    fd = [(float(loss(torch.tensor(h), 512, 50 + s)) - float(loss(torch.tensor(-h), 512, 50 + s))) / (2 * h)
          for s in range(3)]
    g, g_err = float(np.mean(grads)), float(np.std(grads, ddof=1) / math.sqrt(6))
    f, f_err = float(np.mean(fd)), float(np.std(fd, ddof=1) / math.sqrt(3))
    assert abs(g - f) <= 3 * math.hypot(g_err, f_err) + 0.02 * abs(f), (g, g_err, f, f_err)
