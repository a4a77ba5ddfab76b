"""Inverse problems on the Spot cow that must converge (the demo's two halves, with stated metrics)."""

import pytest

from lumigrad.app.demo import fit_spot


@pytest.mark.slow
def test_pose_recovery_from_four_views(spot):
    result = fit_spot(recover_pose=True, recover_texture=False, num_views=4, image_size=96, steps=80,
                      init_rotation_deg=15.0, init_translation=0.08, mesh=spot)
    m = result.metrics
    assert result.history["rotation_error_deg"][0] > 10, "the fit must start far from the answer"
    assert m["rotation_error_deg"] < 1.0, m
    assert m["translation_error"] < 0.01, m


@pytest.mark.slow
def test_texture_recovery_psnr(spot):
    result = fit_spot(recover_pose=False, recover_texture=True, num_views=8, image_size=128, texture_size=64,
                      steps=60, mesh=spot)
    m = result.metrics
    assert m["visible_texel_fraction"] > 0.4, m
    assert m["texture_psnr_db"] >= 30.0, m
