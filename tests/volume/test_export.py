"""density_to_mesh: marching tetrahedra gives closed, outward, correctly placed surfaces of the right topology;
empty / full volumes, chunking, dtypes, bad input, writing through lumigrad.io."""

import math

import pytest
import torch

import lumigrad as lg
from lumigrad.volume import default_surface_level, density_to_mesh

BOX = [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0]
RADIUS = 0.6
WIDTH = 0.05  # of the tanh shell


def ball(p, centre=(0.0, 0.0, 0.0), radius=RADIUS):
    """Density 10 inside ``radius``, 0 outside, a smooth tanh shell of width ``WIDTH``: exactly 5 at ``radius``."""
    r = (p - torch.tensor(centre, dtype=p.dtype)).norm(dim=-1)
    return 5.0 * (1.0 - torch.tanh((r - radius) / WIDTH))


def edges_of(faces):
    """Directed edges ``[3F, 2]`` of the faces, in winding order."""
    return torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])


def assert_closed_and_oriented(mesh):
    """Every undirected edge in exactly two faces, crossed in opposite directions by them (consistent winding)."""
    directed = edges_of(mesh.faces)
    _, uses = torch.unique(directed.sort(1).values, dim=0, return_counts=True)
    assert int(uses.min()) == 2 and int(uses.max()) == 2, "an edge is not shared by exactly two faces"
    _, same_way = torch.unique(directed, dim=0, return_counts=True)
    assert int(same_way.max()) == 1, "two faces cross an edge in the same direction (inconsistent winding)"


def euler_characteristic(mesh):
    edges = torch.unique(edges_of(mesh.faces).sort(1).values, dim=0)
    return mesh.verts.shape[0] - edges.shape[0] + mesh.faces.shape[0]


def signed_volume(mesh):
    v = mesh.verts.double()
    a, b, c = (v[mesh.faces[:, k]] for k in range(3))
    return float((a * torch.linalg.cross(b, c)).sum() / 6)


def components(mesh):
    """Number of connected components of the mesh's vertex graph (min-label propagation)."""
    label = torch.arange(mesh.verts.shape[0])
    e = edges_of(mesh.faces)
    e = torch.cat([e, e.flip(1)])
    while True:
        new = label.scatter_reduce(0, e[:, 0], label[e[:, 1]], "amin")
        if torch.equal(new, label):
            return int(torch.unique(label).numel())
        label = new


def test_sphere_is_closed_outward_placed_and_of_the_right_volume():
    R = 32
    h = 2.0 / R
    mesh = density_to_mesh(ball, BOX, resolution=R, level=5.0)
    assert isinstance(mesh, lg.Mesh) and mesh.faces.dtype == torch.int64 and mesh.verts.dtype == torch.float32
    r = mesh.verts.double().norm(dim=-1)
    assert float((r - RADIUS).abs().max()) < h  # measured 0.011 = 0.18 h
    assert_closed_and_oriented(mesh)
    assert euler_characteristic(mesh) == 2
    exact = 4 / 3 * math.pi * RADIUS ** 3
    vol = signed_volume(mesh)
    assert vol > 0 and abs(vol / exact - 1) < 0.03  # measured -0.5 %
    # outward: every face with an area faces away from the centre
    v = mesh.verts.double()
    a, b, c = (v[mesh.faces[:, k]] for k in range(3))
    n = torch.linalg.cross(b - a, c - a)
    big = n.norm(dim=-1) > 1e-9
    assert bool(((n * (a + b + c)).sum(-1)[big] > 0).all())


def test_vertices_are_shared_not_duplicated():
    mesh = density_to_mesh(ball, BOX, resolution=16, level=5.0)
    # A closed triangle mesh of genus 0 has F = 2 V - 4 only when every vertex is shared by its faces.
    assert mesh.faces.shape[0] == 2 * mesh.verts.shape[0] - 4
    assert int(torch.unique(mesh.faces).numel()) == mesh.verts.shape[0]  # no unused vertex


def test_default_level_is_half_opacity_over_a_lattice_step():
    R = 24
    h = 2.0 / R
    level = default_surface_level(BOX, R)
    assert level == pytest.approx(math.log(2) / h, rel=1e-12)
    assert 1 - math.exp(-level * h) == pytest.approx(0.5, rel=1e-12)
    # a box with unequal sides: the geometric mean of the cell edges
    assert default_surface_level([0, 0, 0, 1, 2, 4], 8) == pytest.approx(math.log(2) / (8 ** (1 / 3) / 8), rel=1e-12)
    mesh = density_to_mesh(ball, BOX, resolution=R)  # level None -> ln 2 / h = 8.32, inside the tanh shell
    expect = RADIUS + WIDTH * math.atanh(1 - level / 5.0)  # where ball(p) = level
    assert_closed_and_oriented(mesh)
    assert float((mesh.verts.double().norm(dim=-1) - expect).abs().max()) < h


def test_a_torus_has_euler_characteristic_zero():
    def torus(p):
        ring = torch.stack([p[:, [0, 2]].norm(dim=-1) - 0.5, p[:, 1]], -1).norm(dim=-1)
        return 5.0 * (1.0 - torch.tanh((ring - 0.2) / WIDTH))

    mesh = density_to_mesh(torus, BOX, resolution=32, level=5.0)
    assert_closed_and_oriented(mesh)
    assert euler_characteristic(mesh) == 0
    exact = 2 * math.pi ** 2 * 0.5 * 0.2 ** 2
    assert abs(signed_volume(mesh) / exact - 1) < 0.03


def test_a_rough_field_still_gives_a_closed_consistently_wound_mesh():
    def rough(p):  # many small pieces, saddles and thin necks; empty near the walls
        noise = torch.sin(13 * p[:, 0]) * torch.sin(11 * p[:, 1] + 1) * torch.sin(17 * p[:, 2] + 2)
        return (ball(p, radius=0.7) * (0.6 + noise)).where(p.abs().amax(-1) < 0.9, torch.zeros(()))

    mesh = density_to_mesh(rough, BOX, resolution=20, level=5.0)
    assert mesh.faces.shape[0] > 1000
    assert_closed_and_oriented(mesh)


def test_two_separate_balls_are_two_components():
    def two(p):
        return torch.maximum(ball(p, (-0.5, 0.0, 0.0), 0.35), ball(p, (0.5, 0.0, 0.0), 0.35))

    mesh = density_to_mesh(two, BOX, resolution=32, level=5.0)  # radius 5.6 lattice steps, a gap of 4.8
    assert_closed_and_oriented(mesh)
    assert components(mesh) == 2
    assert euler_characteristic(mesh) == 4
    # inscribed facets lose volume ~ (h / r)^2: -3.3 % at r = 3.6 h (resolution 24, radius 0.3); here measured -1.4 %
    assert signed_volume(mesh) == pytest.approx(2 * 4 / 3 * math.pi * 0.35 ** 3, rel=0.03)


@pytest.mark.parametrize("value", [0.0, 100.0], ids=["empty", "full"])
def test_empty_and_fully_dense_volumes_give_an_empty_mesh(value):
    mesh = density_to_mesh(lambda p: torch.full((p.shape[0],), value), BOX, resolution=8)
    assert mesh.verts.shape == (0, 3) and mesh.faces.shape == (0, 3)


def test_chunks_do_not_change_the_mesh():
    calls = []

    def counted(p):
        calls.append(p.shape[0])
        return ball(p)

    whole = density_to_mesh(ball, BOX, resolution=12, level=5.0)
    pieces = density_to_mesh(counted, BOX, resolution=12, level=5.0, chunk=100)
    assert max(calls) <= 100 and sum(calls) == 13 ** 3
    assert torch.equal(whole.faces, pieces.faces) and torch.equal(whole.verts, pieces.verts)


def test_points_follow_the_box_dtype_and_the_surface_is_where_asked():
    seen = []

    def probe(p):
        seen.append(p.dtype)
        return ball(p)

    box64 = torch.tensor(BOX, dtype=torch.float64)
    mesh = density_to_mesh(probe, box64, resolution=10, level=5.0)
    assert set(seen) == {torch.float64} and mesh.verts.dtype == torch.float64
    # the lattice includes both walls: a density that is a plane x = 0.3 is met exactly (linear interpolation
    # of a linear field), the cut is open at the walls
    plane = density_to_mesh(lambda p: 1.0 - p[:, 0], BOX, resolution=10, level=0.7)
    assert torch.allclose(plane.verts[:, 0], torch.full_like(plane.verts[:, 0], 0.3), atol=1e-6)
    assert float(plane.verts[:, 1:].abs().max()) == pytest.approx(1.0)
    n = torch.linalg.cross(plane.verts[plane.faces[:, 1]] - plane.verts[plane.faces[:, 0]],
                           plane.verts[plane.faces[:, 2]] - plane.verts[plane.faces[:, 0]])
    assert bool((n[:, 0] > 0).all())  # facing +x: from dense (x < 0.3) to empty


def test_writes_through_lumigrad_io(tmp_path):
    mesh = density_to_mesh(ball, BOX, resolution=8, level=5.0)
    lg.io.write_ply(tmp_path / "ball.ply", mesh.verts, mesh.faces)
    back = lg.io.read_ply(tmp_path / "ball.ply")
    assert torch.equal(back.faces, mesh.faces) and torch.equal(back.verts, mesh.verts)


@pytest.mark.parametrize("kwargs, error, needle", [
    (dict(resolution=1), ValueError, "resolution"),
    (dict(resolution=0), ValueError, "resolution"),
    (dict(resolution=8.0), TypeError, "resolution"),
    (dict(aabb=[-1.0, -1.0, 1.0, 1.0]), ValueError, "aabb"),
    (dict(aabb=[1.0, -1.0, -1.0, -1.0, 1.0, 1.0]), ValueError, "aabb"),
    (dict(level=float("nan")), ValueError, "level"),
    (dict(chunk=0), ValueError, "chunk"),
    (dict(density_fn=lambda p: ball(p)[:, None]), ValueError, "density_fn"),
    (dict(density_fn=lambda p: ball(p)[:-1]), ValueError, "density_fn"),
    (dict(density_fn=lambda p: ball(p).tolist()), ValueError, "density_fn"),
    (dict(density_fn=lambda p: ball(p) * float("nan")), ValueError, "density_fn"),
    (dict(density_fn=lambda p: ball(p) / (p[:, 0] - p[:, 0])), ValueError, "density_fn"),
    (dict(density_fn="ball"), TypeError, "density_fn"),
])
def test_bad_arguments_name_themselves(kwargs, error, needle):
    args = dict(density_fn=ball, aabb=BOX, resolution=4, level=5.0)
    args.update(kwargs)
    with pytest.raises(error, match=needle):
        density_to_mesh(args.pop("density_fn"), args.pop("aabb"), **args)


def test_fields_density_without_gradients():
    from lumigrad.volume.fields import DenseGrid, NerfField

    grid = DenseGrid(BOX, resolution=17)  # vertices on the lattice of 16 cubes: the mesh must match the ball's
    with torch.no_grad():
        z, y, x = torch.meshgrid(*[torch.linspace(-1, 1, 17)] * 3, indexing="ij")
        grid.grid.copy_(ball(torch.stack([x, y, z], -1).reshape(-1, 3)).reshape(17, 17, 17, 1))
    mesh = density_to_mesh(lambda p: grid(p)[:, 0], BOX, resolution=16, level=5.0)
    direct = density_to_mesh(ball, BOX, resolution=16, level=5.0)
    assert not mesh.verts.requires_grad
    assert torch.equal(mesh.faces, direct.faces) and torch.allclose(mesh.verts, direct.verts, atol=1e-5)
    torch.manual_seed(0)
    field = NerfField(BOX, num_levels=4, log2_table_size=10, base_resolution=4, max_resolution=16, hidden_dim=16,
                      color_hidden_dim=16)
    mesh = density_to_mesh(field.density, BOX, resolution=8)
    assert not mesh.verts.requires_grad and mesh.faces.shape[1] == 3
