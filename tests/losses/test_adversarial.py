"""Adversarial losses: functional values, discriminator learns to separate, generator moves toward real,
no gradient leaks into the discriminator, determinism, checkpoint round trip, bad input."""

import pytest
import torch
import torch.nn.functional as F

from lumigrad.losses import AdversarialLoss, PatchDiscriminator, gan_discriminator_loss, gan_generator_loss

S = 16  # patch size


def _smooth(n, gen):
    """Real distribution: smooth patches (bilinearly upsampled 4x4 noise) in [0.2, 0.8]."""
    low = torch.rand(n, 3, 4, 4, generator=gen) * 0.6 + 0.2
    return F.interpolate(low, size=(S, S), mode="bilinear", align_corners=False).permute(0, 2, 3, 1)


def _noisy(n, gen):
    """Fake distribution: the same kind of smooth patch plus strong white noise."""
    return (_smooth(n, gen) + 0.25 * torch.randn(n, S, S, 3, generator=gen)).clamp(0, 1)


def _hf(x):
    """Mean squared horizontal + vertical finite difference: high-frequency energy of [N, H, W, C] images."""
    return float(((x[:, 1:] - x[:, :-1]) ** 2).mean() + ((x[:, :, 1:] - x[:, :, :-1]) ** 2).mean())


def _train(steps=40, seed=0, kind="hinge"):
    torch.manual_seed(seed)
    adv = AdversarialLoss(PatchDiscriminator(width=8, layers=2), lr=2e-3, kind=kind)
    gen = torch.Generator().manual_seed(seed + 100)
    losses = [adv.discriminator_step(_smooth(16, gen), _noisy(16, gen)) for _ in range(steps)]
    return adv, losses


def test_functional_losses_hand_values():
    r, f = torch.tensor([0.5, 2.0]), torch.tensor([-2.0, 0.0])
    torch.testing.assert_close(gan_discriminator_loss(r, f), torch.tensor((0.5 + 0.0) / 2 + (0.0 + 1.0) / 2))
    torch.testing.assert_close(gan_generator_loss(f), torch.tensor(1.0))
    bce = F.binary_cross_entropy_with_logits
    torch.testing.assert_close(gan_discriminator_loss(r, f, "nonsaturating"),
                               bce(r, torch.ones(2)) + bce(f, torch.zeros(2)))
    torch.testing.assert_close(gan_generator_loss(f, "nonsaturating"), bce(f, torch.ones(2)))


def test_discriminator_output_shape():
    d = PatchDiscriminator(channels=1, width=4, layers=3)
    assert d(torch.rand(2, 32, 24, 1)).shape == (2, 4, 3)
    d = PatchDiscriminator(width=4, layers=2, norm="instance")
    assert d(torch.rand(2, 16, 16, 3)).shape == (2, 4, 4)


@pytest.mark.parametrize("kind", ["hinge", "nonsaturating"])
def test_discriminator_learns_to_separate(kind):
    adv, losses = _train(kind=kind)
    assert losses[-1] < 0.5 * losses[0]
    gen = torch.Generator().manual_seed(7)  # fresh samples, not the training ones
    with torch.no_grad():
        real, fake = adv.discriminator(_smooth(32, gen)).mean((1, 2)), adv.discriminator(_noisy(32, gen)).mean((1, 2))
    assert float(real.min()) > float(fake.max()), (real, fake)


def test_generator_gradient_moves_fake_toward_real():
    # a discriminator trained on bright (real) vs dark (fake) patches; generator steps on a parameter image,
    # with the discriminator fixed, raise its brightness and the discriminator's logits
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    adv = AdversarialLoss(PatchDiscriminator(width=8, layers=2), lr=2e-3)
    for _ in range(20):
        adv.discriminator_step(_smooth(16, gen) * 0.5 + 0.45, _smooth(16, gen) * 0.5 + 0.05)
    img = (_smooth(4, gen) * 0.5 + 0.05).requires_grad_()
    opt = torch.optim.Adam([img], lr=0.01)
    with torch.no_grad():
        before_logit, before_mean = float(adv.discriminator(img).mean()), float(img.mean())
    for _ in range(10):
        opt.zero_grad()
        adv.generator_loss(img).backward()
        opt.step()
    with torch.no_grad():
        after_logit, after_mean = float(adv.discriminator(img).mean()), float(img.mean())
    assert after_logit > before_logit + 0.5
    assert after_mean > before_mean + 0.03


def test_alternating_training_makes_noisy_images_smooth():
    # the intended use: one discriminator step per generator step; the noisy images lose high frequencies
    adv, _ = _train()
    gen = torch.Generator().manual_seed(3)
    img = _noisy(8, gen).requires_grad_()
    opt = torch.optim.Adam([img], lr=0.01)
    before = _hf(img.detach())
    for _ in range(30):
        adv.discriminator_step(_smooth(8, gen), img)
        opt.zero_grad()
        adv.generator_loss(img).backward()
        opt.step()
    after = _hf(img.detach())
    assert after < 0.8 * before, (before, after)
    assert _hf(_smooth(8, gen)) < after  # toward the real statistics, not past them


def test_generator_loss_leaves_discriminator_grads_alone():
    adv, _ = _train(steps=2)
    fake = torch.rand(2, S, S, 3, requires_grad=True)
    loss = adv.generator_loss(fake)
    loss.backward()
    assert fake.grad is not None and float(fake.grad.abs().sum()) > 0
    assert all(p.grad is None for p in adv.discriminator.parameters())
    assert all(p.requires_grad for p in adv.discriminator.parameters())  # flags restored
    # a discriminator step does not send gradients to the generator's images
    fake.grad = None
    adv.discriminator_step(torch.rand(2, S, S, 3), fake * 1.0)
    assert fake.grad is None


def test_deterministic_under_manual_seed():
    a, la = _train(steps=5, seed=4)
    b, lb = _train(steps=5, seed=4)
    assert la == lb
    for pa, pb in zip(a.discriminator.state_dict().values(), b.discriminator.state_dict().values()):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize("norm", ["spectral", "instance", "none"])
def test_generator_matches_the_global_rng_construction(norm):
    """``generator=`` gives PyTorch's default initialisation bit for bit, and never touches the global RNG."""
    torch.manual_seed(11)
    want = PatchDiscriminator(width=8, layers=2, norm=norm).state_dict()
    torch.manual_seed(99)
    before = torch.get_rng_state()
    got = PatchDiscriminator(width=8, layers=2, norm=norm, generator=torch.Generator().manual_seed(11)).state_dict()
    assert torch.equal(torch.get_rng_state(), before)
    assert list(got) == list(want)
    for key in want:
        assert torch.equal(got[key], want[key]), key
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        PatchDiscriminator(generator=11)


def test_state_dict_round_trip(tmp_path):
    a, _ = _train(steps=3)
    torch.save(a.state_dict(), tmp_path / "adv.pt")
    torch.manual_seed(123)
    b = AdversarialLoss(PatchDiscriminator(width=8, layers=2), lr=2e-3)
    b.load_state_dict(torch.load(tmp_path / "adv.pt", weights_only=True))
    gen = torch.Generator().manual_seed(5)
    real, fake = _smooth(4, gen), _noisy(4, gen)
    assert a.discriminator_step(real, fake) == b.discriminator_step(real, fake)
    torch.testing.assert_close(a.generator_loss(fake), b.generator_loss(fake))
    with pytest.raises(ValueError, match="kind"):
        AdversarialLoss(PatchDiscriminator(width=8, layers=2), kind="nonsaturating").load_state_dict(a.state_dict())
    with pytest.raises(ValueError, match="state must be"):
        b.load_state_dict({"kind": "hinge"})


def test_bad_input():
    adv = AdversarialLoss(PatchDiscriminator(width=4, layers=2))
    good = torch.rand(2, S, S, 3)
    with pytest.raises(ValueError, match="fake must have shape"):
        adv.generator_loss(torch.rand(S, S, 3))
    with pytest.raises(ValueError, match="fake must have shape"):
        adv.generator_loss(torch.rand(2, S, S, 4))
    with pytest.raises(ValueError, match="real must have shape"):
        adv.discriminator_step(torch.rand(1, 2, S, S, 3), good)
    with pytest.raises(ValueError, match="fake must have H, W >= 4"):
        adv.discriminator_step(good, torch.rand(2, 2, 8, 3))
    with pytest.raises(ValueError, match="real contains NaN"):
        adv.discriminator_step(torch.full_like(good, float("nan")), good)
    with pytest.raises(ValueError, match="kind"):
        AdversarialLoss(kind="wgan")
    with pytest.raises(ValueError, match="lr"):
        AdversarialLoss(lr=0)
    with pytest.raises(ValueError, match="norm"):
        PatchDiscriminator(norm="batch")
    with pytest.raises(TypeError, match="discriminator"):
        AdversarialLoss(discriminator=lambda x: x)
