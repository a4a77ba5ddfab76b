"""render_rays / the volume integrator: central differences of rendered pixels w.r.t. hash-table entries and
dense-grid densities (float64), early termination's effect, occupancy skipping, samples per ray."""

import pytest
import torch

import lumigrad as lg
from lumigrad.scene import VolumeShape
from lumigrad.volume import OccupancyGrid, camera_rays, render_rays
from lumigrad.volume.fields import NerfField


def small_field(encoding="hash", seed=0):
    torch.manual_seed(seed)
    f = NerfField([-1, -1, -1, 1, 1, 1], encoding=encoding, num_levels=3, log2_table_size=8, base_resolution=4,
                  max_resolution=16, grid_resolution=6, grid_channels=4, hidden_dim=8, color_hidden_dim=8,
                  sh_degree=1, density_kind="exp", density_bias=0.5, precision="fp32").double()
    with torch.no_grad():  # features large enough that pixels depend on them visibly
        for p in f.encoder.parameters():
            p.normal_(0.0, 0.5)
    return f


def pixel_loss(field):
    cam = lg.Camera.look_at(torch.tensor([0.3, 0.4, -3.0], dtype=torch.float64), torch.zeros(3, dtype=torch.float64),
                            width=6, height=5, fov_y=0.7)
    scene = lg.Scene()
    scene.add_shape("f", VolumeShape(field))
    out = lg.render(scene, cam, integrator="volume", steps_per_diagonal=48, early_stop_eps=0.0,
                    background=[0.1, 0.2, 0.3])
    weights = torch.linspace(0.5, 1.5, out.rgb.numel(), dtype=torch.float64).reshape(out.rgb.shape)
    return (out.rgb * weights).sum() + out.alpha.sum()


@pytest.mark.parametrize("encoding", ["hash", "dense"])
def test_rendered_pixels_match_central_differences_of_table_entries(encoding):
    field = small_field(encoding)
    table = next(field.encoder.parameters())
    pixel_loss(field).backward()
    grad = table.grad.to_dense() if table.grad.is_sparse else table.grad
    picks = grad.abs().flatten().topk(4).indices.tolist() + [int(grad.abs().flatten().argmin())]
    h = 1e-6
    for k in picks:
        with torch.no_grad():
            table.view(-1)[k] += h
            up = float(pixel_loss(field))
            table.view(-1)[k] -= 2 * h
            down = float(pixel_loss(field))
            table.view(-1)[k] += h
        fd = (up - down) / (2 * h)
        assert float(grad.view(-1)[k]) == pytest.approx(fd, rel=1e-5, abs=1e-8), k
    assert float(grad.abs().max()) > 1e-3


def test_early_termination_changes_the_image_by_less_than_eps():
    field = small_field()
    rays = camera_rays(lg.Camera.look_at(torch.tensor([0.3, 0.4, -3.0], dtype=torch.float64),
                                         torch.zeros(3, dtype=torch.float64), width=12, height=10, fov_y=0.7))
    o, d = rays.origins.reshape(-1, 3), rays.directions.reshape(-1, 3)
    with torch.no_grad():
        field.density_net.net[-1].bias[0] = 4.0  # dense: rays become opaque half-way
        full = render_rays(field, o, d, step_size=0.02, early_stop_eps=0.0)
        cut = render_rays(field, o, d, step_size=0.02, early_stop_eps=1e-3)
    assert cut.samples.num_samples < 0.8 * full.samples.num_samples
    assert float((cut.rgb - full.rgb).abs().max()) <= 1e-3 * 1.01
    assert cut.samples_per_ray < full.samples_per_ray


def test_occupancy_grid_skips_empty_cells_without_changing_the_image():
    field = small_field()
    rays = camera_rays(lg.Camera.look_at(torch.tensor([0.3, 0.4, -3.0], dtype=torch.float64),
                                         torch.zeros(3, dtype=torch.float64), width=12, height=10, fov_y=0.7))
    o, d = rays.origins.reshape(-1, 3), rays.directions.reshape(-1, 3)
    ball = lambda p: torch.where(p.norm(dim=-1) < 0.6, 5.0, 0.0)
    grid = OccupancyGrid([-1, -1, -1, 1, 1, 1], resolution=16, warmup_steps=64, update_every=1)
    gen = torch.Generator().manual_seed(0)
    for step in range(64):  # one jittered point per cell per update: the cells the ball's edge cuts need many
        grid.update(step, lambda p: ball(p.double()).float(), generator=gen)

    class Masked(torch.nn.Module):  # the small field, empty outside the ball
        def __init__(self):
            super().__init__()
            self.inner = field
            self.register_buffer("aabb", field.aabb)

        def density(self, p):
            return self.inner.density(p) * (p.norm(dim=-1) < 0.6)

        def forward(self, p, dirs):
            s, c = self.inner(p, dirs)
            return s * (p.norm(dim=-1) < 0.6), c

    masked = Masked()
    with torch.no_grad():
        plain = render_rays(masked, o, d, step_size=0.02, early_stop_eps=0.0)
        skipped = render_rays(masked, o, d, step_size=0.02, early_stop_eps=0.0, occupancy=grid)
    assert skipped.samples.num_samples < 0.5 * plain.samples.num_samples
    torch.testing.assert_close(skipped.rgb, plain.rgb, rtol=1e-6, atol=1e-6)
