"""Edges of meshes whose vertices are split where the shading changes (a Mitsuba ``cube``: 24 corners, four per
face; glTF seams): the path tracer's edge samplers see each such seam once, as one edge between two faces
(``raster/topology.py``'s ``welded_edge_adjacency``). Seen as two boundary edges, every silhouette of a Mitsuba
cube was sampled twice: an object translation's gradient came out 1.9x its finite differences (-11.5 against
-6.0), a light position's 12 % off (-24.3 against -21.8)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import lumigrad as lg
from lumigrad.io import read_mitsuba_xml
from lumigrad.raster.topology import welded_edge_adjacency, welded_faces

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
    across, seam = welded_edge_adjacency(box.verts, box.faces)
    assert bool((across >= 0).all())  # closed: every edge has a face across
    assert int(seam.sum()) == 24  # the 12 face borders, listed from both sides; the 6 diagonals are not seams
    welded = welded_faces(box.verts, box.faces)
    assert welded.unique().numel() == 8
    torch.testing.assert_close(box.verts[welded], box.verts[box.faces.long()], rtol=0, atol=0)


@pytest.mark.parametrize("what", ["object", "light"])
def test_gradients_of_a_mitsuba_cube_match_finite_differences(tmp_path, what):
    """Six 32-spp gradients (direct light) against central differences of 512-spp renders at three seeds:
    within three combined standard errors plus 2 %."""
    scene = _scene(tmp_path)
    cam = next(iter(scene.cameras.values()))
    weights = torch.rand(24, 32, 3, generator=torch.Generator().manual_seed(0))
    name = "meshes.box.verts" if what == "object" else next(
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
