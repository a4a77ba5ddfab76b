"""On CUDA a frame's checks add no host sync: ``lumigrad.render`` forward + backward waits for the GPU only
where the pipeline must read a size back (the visibility kernel's tile count, which carries the frame's value
checks, and the compactions of covered pixels and silhouette edges). Counted with
``torch.cuda.set_sync_debug_mode``; the number is the one the dispatcher counts on the CPU
(``tests/integrators/test_validation_once.py``), which a GPU run confirms; ``benchmarks/frame_syncs.py``
prints the count with its sites."""

import pytest
import torch

import lumigrad as lg
from lumigrad.app.host_syncs import count_host_syncs

from ..integrators.test_validation_once import FRAME_SYNCS, check_syncs

pytestmark = pytest.mark.cuda


def test_a_frame_syncs_only_where_the_pipeline_reads_sizes(spot):
    spot = spot.to("cuda")
    verts = spot.verts.detach().clone().requires_grad_(True)
    scene = lg.Scene()
    scene.add_mesh("spot", lg.SceneMesh(verts, spot.faces, lg.shading.Material(base_color_texture=spot.texture),
                                        uv=spot.uv, uv_faces=spot.uv_faces))
    scene.add_light("key", lg.PointLight(torch.tensor([2.0, 2.0, 2.0], device="cuda"), 8.0))
    cam = lg.Camera.look_at([2.0, 0.5, 2.0], [0.0, 0.1, 0.0], fov_y=0.7, width=128, height=128).to("cuda")

    def frame():
        verts.grad = None
        lg.render(scene, cam).rgb.mean().backward()

    frame()  # the first frame checks the index tables and remembers them
    sites = count_host_syncs(frame, "cuda")
    report = "\n".join(f"{n} x {site}" for site, n in sites.most_common())
    assert not check_syncs(sites), report
    assert sum(sites.values()) == FRAME_SYNCS, report  # as the dispatcher counts them on the CPU
    assert torch.isfinite(verts.grad).all()
