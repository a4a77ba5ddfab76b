"""Map ``lens``: distortion coefficients that plain Adam can take from k = 0 without folding the lens."""

import pytest
import torch

import lumigrad as lg
from lumigrad.cameras.lens_cover import check_lens_folds
from lumigrad.fitting.parameterize import make_parameterization


def distorted_scene(coeffs, model="opencv"):
    scene = lg.Scene()
    camera = lg.Camera.look_at([0.0, 0.0, 3.0], [0.0, 0.0, 0.0], width=64, height=48, fov_y=1.2)
    camera = lg.Camera(camera.K, camera.world_to_cam, 64, 48, distortion=torch.tensor(coeffs),
                       distortion_model=model)
    scene.add_camera("views", camera)
    return scene


@pytest.mark.parametrize("model, start", [("opencv", [0.0, 0.0, 0.0, 0.0, 0.0]), ("fisheye", [0.0, 0.0, 0.0, 0.0])])
def test_adam_from_zero_distortion_never_folds_the_lens(model, start):
    """A loss that pulls k1 (and k2) hard negative: without the map the second step folds the lens and
    the render check raises; with it every value stays a valid lens and the non-radial terms are untouched."""
    scene = distorted_scene(start, model)
    name = "cameras.views.distortion"
    p = make_parameterization("lens", [name], scene[name], "optimize[0]", info=scene.param_info(name))
    optimizer = torch.optim.Adam(p.leaves, lr=0.5)
    for _ in range(20):
        optimizer.zero_grad()
        value = p.apply(scene)
        check_lens_folds(scene.cameras["views"])  # what the next render would check
        loss = value[0] + value[1] - (value[2] if model == "opencv" else 0.0)
        loss.backward()
        optimizer.step()
    value = p.apply(scene)
    check_lens_folds(scene.cameras["views"])
    assert float(value[0].detach()) < -0.01  # it did move towards the pull
    raw = torch.tensor(start)
    raw[0] = raw[1] = -0.5 * 20
    with pytest.raises(ValueError, match="folds"):  # the same pull unprojected folds
        check_lens_folds(distorted_scene(raw.tolist(), model).cameras["views"])


def test_a_valid_lens_is_left_exactly_as_it_is():
    scene = distorted_scene([-0.1, 0.02, 0.001, -0.002, 0.0])
    name = "cameras.views.distortion"
    p = make_parameterization("lens", [name], scene[name], "optimize[0]", info=scene.param_info(name))
    assert torch.equal(p.apply(scene), torch.tensor([-0.1, 0.02, 0.001, -0.002, 0.0]))


def test_lens_map_refuses_other_parameters():
    scene = distorted_scene([0.0] * 5)
    with pytest.raises(ValueError, match="map 'lens' is for lens distortion"):
        make_parameterization("lens", ["cameras.views.K"], scene["cameras.views.K"], "optimize[0]",
                              info=scene.param_info("cameras.views.K"))
