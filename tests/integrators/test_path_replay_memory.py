"""The path replay's memory: the autograd graph it holds does not grow with the depth, and replaying the paths
``REPLAY_PATHS`` at a time bounds it without changing the gradients.

What is measured is the bytes of the tensors autograd saves for the backward (a ``saved_tensors_hooks`` pair that
counts each saved tensor while the graph that holds it is alive), not the process's resident memory, which the
allocator and other processes make noisy."""

import gc

import pytest
import torch

import lumigrad as lg
import lumigrad.integrators.path as path_module

F32 = torch.float32
QUAD = torch.tensor([[0, 1, 2], [0, 2, 3]])


def _closed_box(lamp_y):
    """A closed diffuse box (six double-sided walls) lit by a square lamp under the ceiling at height ``lamp_y``,
    the camera inside: no path leaves it, so every path lives to ``max_depth`` (Russian roulette off)."""
    walls = [
        [[-1, -1, -1], [-1, -1, 1], [1, -1, 1], [1, -1, -1]],
        [[-1, 1, -1], [1, 1, -1], [1, 1, 1], [-1, 1, 1]],
        [[-1, -1, 1], [-1, 1, 1], [1, 1, 1], [1, -1, 1]],
        [[-1, -1, -1], [1, -1, -1], [1, 1, -1], [-1, 1, -1]],
        [[-1, -1, -1], [-1, 1, -1], [-1, 1, 1], [-1, -1, 1]],
        [[1, -1, -1], [1, -1, 1], [1, 1, 1], [1, 1, -1]],
    ]
    scene = lg.Scene()
    for k, verts in enumerate(walls):
        material = lg.shading.Material(base_color_factor=torch.tensor([0.6, 0.6, 0.6, 1.0]), metallic_factor=0.0,
                                       roughness_factor=1.0, ior=1.0)
        scene.add_mesh(f"wall{k}", lg.SceneMesh(torch.tensor(verts, dtype=F32), QUAD, material, double_sided=True))
    lamp = torch.tensor([[-0.25, 0.0, -0.25], [0.25, 0.0, -0.25], [0.25, 0.0, 0.25], [-0.25, 0.0, 0.25]])
    lamp = lamp + torch.stack([torch.zeros_like(lamp_y), lamp_y, torch.zeros_like(lamp_y)])
    scene.add_light("lamp", lg.AreaLight(lamp, QUAD, torch.tensor([10.0, 10.0, 10.0])))
    cam = lg.Camera.look_at([0.0, 0.0, -0.9], [0.0, 0.0, 1.0], fov_y=1.2, width=12, height=12)
    return scene, cam


class _SavedBytes:
    """Counts the bytes autograd holds for the backward while active: ``live`` now, ``peak`` the most so far."""

    def __init__(self):
        self.live = self.peak = 0

    def pack(self, t):
        return _Held(self, t)

    @staticmethod
    def unpack(held):
        return held.tensor


class _Held:
    def __init__(self, counter, tensor):
        # detached: holding a saved output with its grad_fn would be a reference cycle through the graph
        self.counter, self.tensor = counter, tensor.detach()
        self.nbytes = tensor.numel() * tensor.element_size()
        counter.live += self.nbytes
        counter.peak = max(counter.peak, counter.live)

    def __del__(self):
        self.counter.live -= self.nbytes


def _gradient(max_depth, spp=4, monkeypatch=None, replay_paths=None):
    """``(d mean / d lamp height, d mean / d wall albedo, the peak bytes the backward's graphs held)``."""
    lamp_y = torch.tensor(0.99, requires_grad=True)
    scene, cam = _closed_box(lamp_y)
    albedo = scene.meshes["wall2"].material.base_color_factor.requires_grad_(True)
    if replay_paths is not None:
        monkeypatch.setattr(path_module, "REPLAY_PATHS", replay_paths)
    image = lg.render(scene, cam, integrator=lg.integrators.PathIntegrator(max_depth=max_depth, rr_depth=max_depth,
                                                                           edge_samples=0, shadow_edge_samples=0),
                      spp=spp, seed=3).rgb.mean()
    counter = _SavedBytes()
    with torch.autograd.graph.saved_tensors_hooks(counter.pack, counter.unpack):
        image.backward()
    del image
    gc.collect()
    assert counter.live == 0, counter.live  # every graph of the replay was freed
    return lamp_y.grad, albedo.grad, counter.peak


def test_the_replay_holds_no_more_graph_at_depth_12_than_at_depth_3():
    _, _, peak3 = _gradient(3)
    _, _, peak12 = _gradient(12)
    assert peak3 > 0
    # one vertex's graph of every path (and the previous vertex's BSDF-weight ratio): the same at any depth
    assert peak12 <= 1.02 * peak3, (peak3, peak12)


def test_replaying_the_paths_in_slices_bounds_the_graph_and_keeps_the_gradients(monkeypatch):
    spp = 4
    paths = 12 * 12 * spp
    y_all, a_all, peak_all = _gradient(4, spp, monkeypatch, replay_paths=paths)
    y_part, a_part, peak_part = _gradient(4, spp, monkeypatch, replay_paths=paths // 4 + 1)
    assert peak_part < 0.4 * peak_all, (peak_part, peak_all)
    # the same paths (the same random numbers): the same gradients up to float32 summation order
    torch.testing.assert_close(y_part, y_all, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(a_part, a_all, rtol=1e-5, atol=1e-7)
    assert float(y_all) != 0 and float(a_all.abs().sum()) > 0
