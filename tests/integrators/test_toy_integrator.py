"""A new renderer is one file plus a registration: a ray-cast normal renderer on Warp's BVH (``wp.Mesh``),
registered as ``"toy_normals"`` and chosen with ``lumigrad.render(..., integrator="toy_normals")``, agrees with
the raster integrator's ``normal`` AOV wherever both see the same triangle.

Everything the toy needs is in this file: a small Warp kernel around ``wp.mesh_query_ray``, the scene's
meshes in world space, one ray per pixel centre, and the :class:`~lumigrad.integrators.Integrator` protocol.
"""

from __future__ import annotations

import pytest
import torch
import warp as wp

import lumigrad as lg
from lumigrad.integrators import Integrator, RenderOutput, register_integrator, unregister_integrator

wp.set_module_options({"enable_backward": False})  # forward only: compiles faster


@wp.kernel
def _first_hit(mesh: wp.uint64, origins: wp.array(dtype=wp.vec3), directions: wp.array(dtype=wp.vec3),
               max_t: float, face: wp.array(dtype=wp.int32), bary: wp.array(dtype=wp.vec3)):
    i = wp.tid()
    hit = wp.mesh_query_ray(mesh, origins[i], directions[i], max_t)
    face[i] = -1
    if hit.result:
        face[i] = hit.face
        bary[i] = wp.vec3(hit.u, hit.v, 1.0 - hit.u - hit.v)  # the hit is u p0 + v p1 + (1 - u - v) p2


@register_integrator("toy_normals")
class ToyNormals(Integrator):
    """First-hit ray casting of the scene's meshes on a Warp BVH: colour ``0.5 + 0.5 n`` of the interpolated
    vertex normal over black, AOVs ``normal``, ``mask`` and ``face_id``. Perspective, unbatched cameras only."""

    aov_names = ("normal", "mask", "face_id")

    def __init__(self, *, max_distance: float = 1e30):
        if not isinstance(max_distance, (int, float)) or not max_distance > 0:
            raise ValueError(f"max_distance must be a positive number; got {max_distance!r}")
        self.max_distance = float(max_distance)

    def render(self, scene, camera, *, aovs=(), spp=1, seed=0) -> RenderOutput:
        if camera.batch_shape != () or camera.projection != "perspective" or camera.distortion is not None:
            raise ValueError("toy_normals renders one undistorted perspective camera")
        verts, faces, normals, offset = [], [], [], 0
        for mesh in scene.meshes.values():  # the scene's triangles in world space, in draw order
            v = mesh.world_verts().detach().float()
            verts.append(v)
            faces.append(mesh.faces + offset)
            normals.append(lg.vertex_normals(v, mesh.faces))
            offset += v.shape[0]
        verts, faces, normals = torch.cat(verts), torch.cat(faces), torch.cat(normals)
        H, W = camera.height, camera.width
        origin, direction = camera.ray_origins_directions(lg.conventions.pixel_centers(H, W, dtype=camera.dtype))
        R, t = camera.world_to_cam[:3, :3], camera.world_to_cam[:3, 3]
        origin = ((origin - t) @ R).reshape(-1, 3).float().contiguous()  # x_w = R^T (x_c - t)
        direction = (direction @ R).reshape(-1, 3).float()
        direction = (direction / direction.norm(dim=-1, keepdim=True)).contiguous()  # t in world units
        wp.init()
        bvh = wp.Mesh(points=wp.from_torch(verts.contiguous(), dtype=wp.vec3),
                      indices=wp.from_torch(faces.reshape(-1).to(torch.int32).contiguous()))
        face = torch.empty(H * W, dtype=torch.int32)
        bary = torch.zeros(H * W, 3)
        wp.launch(_first_hit, dim=H * W, inputs=[bvh.id, wp.from_torch(origin, dtype=wp.vec3),
                                                 wp.from_torch(direction, dtype=wp.vec3), self.max_distance],
                  outputs=[wp.from_torch(face), wp.from_torch(bary, dtype=wp.vec3)], device="cpu")
        hit = face >= 0
        normal = (normals[faces[face.clamp_min(0).long()]] * bary[:, :, None]).sum(1)
        normal = torch.where(hit[:, None], normal / normal.norm(dim=-1, keepdim=True).clamp_min(1e-12), 0.0)
        mask = hit[:, None].float()
        buffers = {"normal": normal.reshape(H, W, 3), "mask": mask.reshape(H, W, 1), "face_id": face.reshape(H, W)}
        rgb = ((0.5 + 0.5 * normal) * mask).reshape(H, W, 3)
        return RenderOutput(rgb, buffers["mask"], {a: buffers[a] for a in aovs})


@pytest.fixture(scope="module", autouse=True)
def _unregister_at_the_end():
    yield
    unregister_integrator("toy_normals")


def _two_balls() -> lg.Scene:
    scene = lg.Scene()
    verts, faces = lg.geometry.icosphere(2)
    scene.add_mesh("big", lg.SceneMesh(verts, faces))
    to_world = torch.eye(4)
    to_world[:3, :3] *= 0.5
    to_world[:3, 3] = torch.tensor([0.6, 0.4, -0.9])  # in front of the big ball, overlapping it in the image
    scene.add_mesh("small", lg.SceneMesh(verts, faces, to_world=to_world))
    return scene


def test_toy_integrator_is_registered_and_agrees_with_the_raster_normals():
    scene = _two_balls()
    cam = lg.Camera.look_at([0.4, 0.6, -4.0], [0.1, 0.1, 0.0], fov_y=0.8, width=64, height=48)
    assert "toy_normals" in lg.integrators.integrator_names()
    ras = lg.render(scene, cam, aovs=("normal", "mask", "face_id"), use_antialias=False)
    toy = lg.render(scene, cam, integrator="toy_normals", aovs=("normal", "mask", "face_id"))
    assert toy.rgb.shape == (48, 64, 3) and toy.aovs["normal"].shape == ras.aovs["normal"].shape
    both = (toy.aovs["mask"][..., 0] > 0) & (ras.aovs["mask"][..., 0] > 0)
    either = (toy.aovs["mask"][..., 0] > 0) | (ras.aovs["mask"][..., 0] > 0)
    assert both.sum() > 600 and float(both.sum()) / float(either.sum()) > 0.98  # the same silhouettes
    same_face = both & (toy.aovs["face_id"] == ras.aovs["face_id"])
    assert float(same_face.sum()) / float(both.sum()) > 0.98  # the same visible triangle, occlusion included
    first = scene.meshes["big"].faces.shape[0]
    assert (toy.aovs["face_id"][same_face] >= first).sum() > 50  # the small ball (second mesh) is seen in front
    assert (toy.aovs["face_id"][same_face] < first).sum() > 50
    diff = (toy.aovs["normal"] - ras.aovs["normal"]).norm(dim=-1)[same_face]
    assert float(diff.max()) < 1e-4
    assert torch.allclose(toy.alpha, toy.aovs["mask"])


def test_toy_integrator_settings_are_validated_by_the_registry():
    scene = _two_balls()
    cam = lg.Camera.look_at([0.0, 0.0, -4.0], [0.0, 0.0, 0.0], width=8, height=8)
    with pytest.raises(ValueError, match=r"integrator 'toy_normals' has no setting 'use_antialias'; its settings "
                                         r"are: max_distance"):
        lg.render(scene, cam, integrator="toy_normals", use_antialias=False)
    with pytest.raises(ValueError, match="max_distance must be a positive number"):
        lg.render(scene, cam, integrator="toy_normals", max_distance=-1.0)
    with pytest.raises(ValueError, match=r"integrator 'toy_normals' has no AOV 'depth'; its AOVs are: normal, "
                                         r"mask, face_id"):
        lg.render(scene, cam, integrator="toy_normals", aovs=("depth",))
    near = lg.render(scene, cam, integrator="toy_normals", max_distance=1.0)
    assert float(near.alpha.sum()) == 0  # nothing within one unit of the eye
