"""Neural deferred shading: the shader's shapes and validation, compositing over the background, and image
gradients w.r.t. mesh vertices (through the antialiased coverage at silhouettes) against finite differences."""

import math

import pytest
import torch

import lumigrad as lg
from lumigrad.integrators import RasterIntegrator
from lumigrad.integrators import NeuralShader, shade_gbuffer

from ..conftest import camera_at, cosine

F64 = torch.float64
BOX = [-1.5, -1.5, -1.5, 1.5, 1.5, 1.5]


def _shader(dtype=F64, seed=0, **kw):
    torch.manual_seed(seed)
    kw.setdefault("activation", "softplus")  # smooth: finite differences need no kinks
    kw.setdefault("hidden_dim", 16)
    kw.setdefault("num_hidden_layers", 2)
    return NeuralShader(BOX, **kw).to(dtype)


def _buffers(verts, faces, cam, antialias=True, uv=None):
    scene = lg.Scene()
    scene.add_mesh("ball", lg.SceneMesh(verts, faces, uv=uv))
    names = ("position", "normal", "mask") + (("uv",) if uv is not None else ())
    return RasterIntegrator(use_antialias=antialias).render_aovs(scene, cam, names)


# ----------------------------------------------------------------------------------------------- the shader
@pytest.mark.parametrize("view_encoding", ["sh", "frequency"])
@pytest.mark.parametrize("output", ["linear", "srgb"])
def test_shader_shapes_range_and_broadcasting(view_encoding, output):
    shader = _shader(torch.float32, view_encoding=view_encoding, output=output, use_uv=True)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 5, 3, generator=g) * 3 - 1.5
    n = torch.randn(2, 5, 3, generator=g)
    v = torch.randn(1, 1, 3, generator=g)  # one direction for every point
    uv = torch.rand(5, 2, generator=g)
    c = shader(x, n, v, uv).detach()
    assert c.shape == (2, 5, 3) and c.dtype == torch.float32
    assert float(c.min()) >= 0.0 and float(c.max()) <= 1.0
    # normals and view directions are read as unit vectors: their length does not matter
    assert torch.allclose(shader(x, 3 * n, 0.5 * v, uv), c, atol=1e-6)
    # sRGB output is the linear network's output encoded
    if output == "srgb":
        linear = torch.sigmoid(shader.mlp(torch.cat([
            lg.volume.fields.frequency_encode(2 * (x + 1.5) / 3 - 1, 4), torch.nn.functional.normalize(n, dim=-1),
            shader._view(torch.nn.functional.normalize(v, dim=-1).expand(2, 5, 3)),
            lg.volume.fields.frequency_encode(uv, 4).expand(2, 5, -1)], -1)))
        assert torch.allclose(c, lg.shading.srgb_encode(linear), atol=1e-6)


def test_shader_reads_view_direction_and_gets_parameter_gradients():
    shader = _shader(F64)
    x = torch.zeros(4, 3, dtype=F64)
    n = torch.tensor([0.0, 0.0, 1.0], dtype=F64).expand(4, 3)
    v = torch.eye(3, dtype=F64)[[0, 1, 2, 2]]
    c = shader(x, n, v)
    assert torch.equal(c[2], c[3]) and not torch.allclose(c[0], c[1])
    c.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in shader.parameters())


def test_shader_input_gradients_match_gradcheck():
    shader = _shader(F64, num_hidden_layers=1, hidden_dim=8, use_uv=True)
    g = torch.Generator().manual_seed(2)
    inputs = [torch.rand(3, 3, generator=g, dtype=F64), torch.randn(3, 3, generator=g, dtype=F64),
              torch.randn(3, 3, generator=g, dtype=F64), torch.rand(3, 2, generator=g, dtype=F64)]
    assert torch.autograd.gradcheck(shader, [t.requires_grad_(True) for t in inputs])


def test_shader_validation():
    with pytest.raises(ValueError, match="aabb"):
        NeuralShader([0, 0, 0, 0, 1, 1])
    with pytest.raises(ValueError, match="view_encoding"):
        NeuralShader(BOX, view_encoding="fourier")
    with pytest.raises(ValueError, match="output"):
        NeuralShader(BOX, output="hdr")
    with pytest.raises(ValueError, match="degree"):
        NeuralShader(BOX, view_degree=5)
    with pytest.raises(ValueError, match="position_frequencies"):
        NeuralShader(BOX, position_frequencies=0)
    with pytest.raises(TypeError, match="use_uv"):
        NeuralShader(BOX, use_uv=1)
    shader = NeuralShader(BOX)
    x, n = torch.zeros(4, 3), torch.ones(4, 3)
    with pytest.raises(ValueError, match="normal must have shape"):
        shader(x, torch.ones(4, 2), n)
    with pytest.raises(TypeError, match="view_dir is torch.float64"):
        shader(x, n, n.double())
    with pytest.raises(ValueError, match="broadcastable"):
        shader(x, torch.ones(3, 3), n)
    with pytest.raises(ValueError, match="position contains NaN"):
        shader(torch.full((4, 3), math.nan), n, n)
    with pytest.raises(ValueError, match="uv was given"):
        shader(x, n, n, torch.zeros(4, 2))
    with pytest.raises(ValueError, match="uv is required"):
        NeuralShader(BOX, use_uv=True)(x, n, n)


# --------------------------------------------------------------------------------------- shading a G-buffer
def test_composite_is_the_background_exactly_where_nothing_is_covered():
    verts, faces = lg.geometry.icosphere(2, dtype=F64)
    cams = lg.Camera.look_at(torch.tensor([[0.0, 0.0, -3.0], [3.0, 0.5, 0.0]], dtype=F64), torch.zeros(2, 3, dtype=F64),
                             width=20, height=16, fov_y=0.9)
    aovs = _buffers(verts, faces, cams)
    shader = _shader(F64)
    background = torch.rand(2, 16, 20, 3, generator=torch.Generator().manual_seed(3), dtype=F64)
    image = shade_gbuffer(shader, aovs, cams, background)
    assert image.shape == (2, 16, 20, 3)
    empty = aovs["mask"][..., 0] == 0
    inside = aovs["mask"][..., 0] == 1
    assert empty.sum() > 100 and inside.sum() > 100 and (~empty & ~inside).sum() > 20  # silhouettes too
    assert torch.equal(image[empty], background[empty])
    # covered pixels are the shader's colour of the surface point seen there, looking back to the camera
    eye = torch.tensor([[0.0, 0.0, -3.0], [3.0, 0.5, 0.0]], dtype=F64)[:, None, None, :].expand(2, 16, 20, 3)
    p, n = aovs["position"][inside], aovs["normal"][inside]
    assert torch.allclose(image[inside], shader(p, n, eye[inside] - p), atol=1e-12)
    # a scalar background is the same as a constant image
    assert torch.allclose(shade_gbuffer(shader, aovs, cams, 0.25), shade_gbuffer(shader, aovs, cams,
                                                                                 torch.full((3,), 0.25, dtype=F64)))


def test_silhouettes_equal_shading_then_antialiasing():
    # Antialiasing the shaded hard image over the background (what the raster integrator does to colour) and
    # shading the antialiased buffers agree exactly wherever a pixel is blended across a single edge (every
    # blended pixel of this scene; where two edges meet in one pixel the shader would see their mean point).
    verts, faces = lg.geometry.icosphere(2, dtype=F64)
    cam = camera_at((0.4, 0.3, -3.0), size=(24, 20))
    shader = _shader(F64)
    background = torch.tensor([0.2, 0.5, 0.9], dtype=F64)
    mine = shade_gbuffer(shader, _buffers(verts, faces, cam), cam, background)
    hard = _buffers(verts, faces, cam, antialias=False)
    covered = hard["mask"][..., 0] > 0
    eye = -(cam.world_to_cam[:3, :3].T @ cam.world_to_cam[:3, 3])
    colour = background.expand(20, 24, 3).clone()
    p = hard["position"][covered]
    colour[covered] = shader(p, hard["normal"][covered], eye - p)
    frags = lg.rasterize(verts, faces, cam)
    theirs = lg.antialias(colour, frags, verts, faces, cam)
    diff = (mine - theirs).detach().abs().amax(-1)
    blended = (hard["mask"][..., 0] != _buffers(verts, faces, cam)["mask"][..., 0])
    assert blended.sum() > 20
    assert float(diff.max()) < 1e-12


def test_shading_uv():
    verts, faces = lg.geometry.icosphere(1, dtype=F64)
    uv = verts[:, :2] * 0.5 + 0.5
    cam = camera_at((0.0, 0.0, -3.0), size=(16, 16))
    aovs = _buffers(verts, faces, cam, uv=uv)
    image = shade_gbuffer(_shader(F64, use_uv=True), aovs, cam)
    assert image.shape == (16, 16, 3) and torch.isfinite(image).all()
    with pytest.raises(ValueError, match="no 'uv' buffer"):
        shade_gbuffer(_shader(F64, use_uv=True), {k: v for k, v in aovs.items() if k != "uv"}, cam)


def test_shade_gbuffer_validation():
    verts, faces = lg.geometry.icosphere(1, dtype=F64)
    cam = camera_at((0.0, 0.0, -3.0), size=(16, 12))
    aovs = _buffers(verts, faces, cam)
    shader = _shader(F64)
    with pytest.raises(TypeError, match="shader must be"):
        shade_gbuffer(lambda *a: a, aovs, cam)
    with pytest.raises(TypeError, match="aovs must be a dict"):
        shade_gbuffer(shader, [aovs["position"]], cam)
    with pytest.raises(TypeError, match="camera must be"):
        shade_gbuffer(shader, aovs, None)
    with pytest.raises(ValueError, match="no 'mask' buffer"):
        shade_gbuffer(shader, {"position": aovs["position"], "normal": aovs["normal"]}, cam)
    with pytest.raises(ValueError, match=r"aovs\['normal'\] must have shape"):
        shade_gbuffer(shader, dict(aovs, normal=aovs["normal"][..., :2]), cam)
    with pytest.raises(ValueError, match=r"aovs\['mask'\] must have shape \(12, 16, 1\)"):
        shade_gbuffer(shader, dict(aovs, mask=aovs["mask"][:8]), cam)
    with pytest.raises(TypeError, match="shader's weights are torch.float32"):
        shade_gbuffer(_shader(torch.float32), aovs, cam)
    bad = aovs["position"].clone()
    bad[3, 4, 0] = math.inf
    with pytest.raises(ValueError, match=r"aovs\['position'\] contains NaN or Inf"):
        shade_gbuffer(shader, dict(aovs, position=bad), cam)
    with pytest.raises(ValueError, match="background must be a number or broadcast"):
        shade_gbuffer(shader, aovs, cam, torch.zeros(5, 3, dtype=F64))
    with pytest.raises(ValueError, match="background must be finite"):
        shade_gbuffer(shader, aovs, cam, math.nan)
    with pytest.raises(TypeError, match="background must be a number"):
        shade_gbuffer(shader, aovs, cam, "white")


# --------------------------------------------------------------------------------- gradients w.r.t. vertices
def _silhouette_vertex(verts, cam):
    """The vertex of a sphere whose normal is most nearly perpendicular to its view ray (on the outline)."""
    eye = -(cam.world_to_cam[:3, :3].T @ cam.world_to_cam[:3, 3])
    to_eye = torch.nn.functional.normalize(eye - verts, dim=-1)
    grazing = (torch.nn.functional.normalize(verts, dim=-1) * to_eye).sum(-1).abs()
    return int(grazing.argmin())


@pytest.mark.parametrize("constant", [True, False], ids=["coverage-only", "full-shader"])
def test_vertex_gradient_at_the_silhouette_matches_finite_differences(constant):
    # Constant colour (the last layer's weights zeroed): the image changes only through the antialiased
    # coverage, so the gradient is purely the silhouette term; with the full shader, positions, normals and
    # view directions add theirs.
    verts, faces = lg.geometry.icosphere(1, dtype=F64)
    cam = camera_at((0.4, 0.3, -3.0), size=(24, 20))
    shader = _shader(F64)
    if constant:
        with torch.no_grad():
            shader.mlp.net[-1].weight.zero_()
    background = torch.tensor([0.1, 0.3, 0.2], dtype=F64)
    weights = torch.rand(20, 24, 3, generator=torch.Generator().manual_seed(4), dtype=F64)
    k = _silhouette_vertex(verts, cam)

    def loss(vertex):
        v = torch.cat([verts[:k], vertex[None], verts[k + 1:]])
        return (weights * shade_gbuffer(shader, _buffers(v, faces, cam), cam, background)).sum()

    vertex = verts[k].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(vertex), vertex)
    eps = 1e-6
    with torch.no_grad():
        fd = torch.stack([(loss(verts[k] + eps * e) - loss(verts[k] - eps * e)) / (2 * eps)
                          for e in torch.eye(3, dtype=F64)])
    assert float(fd.abs().max()) > 1e-2  # the vertex moves the image
    assert cosine(grad, fd) > 0.999
    assert torch.allclose(grad, fd, rtol=1e-5, atol=1e-6 * float(fd.abs().max()))  # measured: 1e-9
