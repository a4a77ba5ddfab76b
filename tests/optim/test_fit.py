"""The ``Fit`` loop: bit-for-bit resume, divergence errors, spike clipping, frozen groups, schedules, checkpoints."""

from __future__ import annotations

import math

import pytest
import torch

from lumigrad.geometry.subdivide import icosphere
from lumigrad.optim import Fit, FitDivergedError, FitResult, LargeSteps, ParamGroup, cosine_schedule
from lumigrad.optim.fit import CHECKPOINT_NAME

F64 = torch.float64


def _warmup(step, steps):  # depends on the step only, so runs with different `steps` agree
    return min(1.0, (step + 1) / 5)


def _problem(kind: str, schedule=_warmup):
    """Fresh tensors with fixed initial values and a loss that draws torch random numbers every step."""
    g = torch.Generator().manual_seed(123)
    if kind == "image":
        target = torch.rand(8, 8, 3, generator=g)
        color = torch.nn.Parameter(torch.rand(8, 8, 3, generator=g))
        gain = torch.nn.Parameter(torch.tensor([0.5]))

        def loss_fn(step):
            idx = torch.randint(0, 64, (16,))  # random pixel subsampling: needs the RNG state restored
            noise = 0.01 * torch.randn(16, 3)
            pred = color.view(-1, 3)[idx] * gain
            loss = ((pred - target.view(-1, 3)[idx] + noise) ** 2).mean()
            return loss, {"pixels": float(idx.numel())}

        groups = {"color": ParamGroup([color], lr=0.05),
                  "gain": ParamGroup([gain], lr=0.1, optimizer="sgd", momentum=0.9, schedule=schedule, start=3)}
        return loss_fn, groups, [color, gain]
    v, f = icosphere(1, dtype=F64)  # 42 vertices: dense Cholesky solver, no warm-start state
    ls = LargeSteps(v, f, lambda_=10.0)
    target = v * 1.3
    offset = torch.nn.Parameter(torch.zeros(3, dtype=F64))

    def loss_fn(step):
        idx = torch.randint(0, v.shape[0], (10,))
        return ((ls.verts()[idx] + offset - target[idx]) ** 2).sum()

    groups = {"shape": ParamGroup([ls.parameter], lr=0.02, optimizer="adam_uniform", schedule=schedule),
              "offset": ParamGroup([offset], lr=0.01)}
    return loss_fn, groups, [ls.parameter, offset]


class _Crash:
    def __init__(self, at):
        self.at = at

    def __call__(self, step, loss, log):
        if step == self.at:
            raise KeyboardInterrupt


@pytest.mark.parametrize("kind", ["image", "large_steps"])
@pytest.mark.parametrize("first_steps,schedule", [(12, _warmup), (20, cosine_schedule)])
def test_resume_is_bit_for_bit(tmp_path, kind, first_steps, schedule):
    loss_fn, groups, params = _problem(kind, schedule)
    full = Fit(loss_fn, groups, steps=20, seed=7).run()
    assert isinstance(full, FitResult) and full.steps_done == 20 and len(full.losses) == 20
    want = [p.detach().clone() for p in params]

    loss_fn, groups, params = _problem(kind, schedule)
    crashing = Fit(loss_fn, groups, steps=first_steps, seed=7, checkpoint_dir=tmp_path, checkpoint_every=4,
                   callbacks=[_Crash(at=9)])  # the 10th step: last checkpoint after 8 steps
    with pytest.raises(KeyboardInterrupt):
        crashing.run()
    assert torch.load(tmp_path / CHECKPOINT_NAME, weights_only=False)["steps_done"] == 8
    torch.manual_seed(999)  # the resumed run must not depend on the RNG state it starts in

    loss_fn, groups, params = _problem(kind, schedule)
    seen = []
    resumed = Fit(loss_fn, groups, steps=20, seed=7, checkpoint_dir=tmp_path, checkpoint_every=4, resume=True,
                  callbacks=[lambda step, loss, log: seen.append(step)]).run()
    assert seen == list(range(8, 20))  # steps 8 and 9 (the 9th and 10th) are redone
    assert resumed.steps_done == 20
    assert resumed.losses == full.losses
    assert resumed.logs == full.logs
    for p, w in zip(params, want):
        assert torch.equal(p.detach(), w)
    assert torch.load(tmp_path / CHECKPOINT_NAME, weights_only=False)["steps_done"] == 20
    assert sorted(x.name for x in tmp_path.iterdir()) == [CHECKPOINT_NAME]  # no temporary files left


def test_resume_method_and_finished_checkpoint(tmp_path):
    loss_fn, groups, params = _problem("image")
    first = Fit(loss_fn, groups, steps=6, checkpoint_dir=tmp_path, checkpoint_every=100).run()
    loss_fn, groups, params2 = _problem("image")
    again = Fit(loss_fn, groups, steps=6, checkpoint_dir=tmp_path).resume()  # nothing left to do
    assert again.losses == first.losses and again.steps_done == 6
    assert all(torch.equal(a, b) for a, b in zip(params, params2))


def test_resume_without_checkpoint_starts_fresh(tmp_path):
    loss_fn, groups, _ = _problem("image")
    a = Fit(loss_fn, groups, steps=3).run()
    loss_fn, groups, _ = _problem("image")
    b = Fit(loss_fn, groups, steps=3, checkpoint_dir=tmp_path / "new", resume=True).run()
    assert a.losses == b.losses


def test_resume_mismatched_group_raises(tmp_path):
    p = torch.nn.Parameter(torch.zeros(4))
    Fit(lambda s: (p ** 2).sum(), {"a": ParamGroup([p], lr=0.1)}, steps=2, checkpoint_dir=tmp_path).run()
    q = torch.nn.Parameter(torch.zeros(5))
    with pytest.raises(ValueError, match=r"different parameter groups.*\[4\].*\[5\]"):
        Fit(lambda s: (q ** 2).sum(), {"a": ParamGroup([q], lr=0.1)}, steps=4, checkpoint_dir=tmp_path,
            resume=True).run()
    r = torch.nn.Parameter(torch.zeros(4))
    with pytest.raises(ValueError, match="different parameter groups"):
        Fit(lambda s: (r ** 2).sum(), {"b": ParamGroup([r], lr=0.1)}, steps=4, checkpoint_dir=tmp_path).resume()


def test_nan_gradient_names_group_and_step():
    a = torch.nn.Parameter(torch.ones(3))
    b = torch.nn.Parameter(torch.full((2, 2), 2.0))
    state = {"step": -1}
    b.register_hook(lambda g: torch.full_like(g, float("nan")) if state["step"] == 4 else g)

    def loss_fn(step):
        state["step"] = step
        return (a ** 2).sum() + (b ** 2).sum()

    fit = Fit(loss_fn, {"a": ParamGroup([a], lr=0.01), "b": ParamGroup([b], lr=0.01)}, steps=10)
    with pytest.raises(FitDivergedError, match=r"group 'b' parameter 0 has 4 NaN/Inf.*at step 4.*min 1\.9"):
        fit.run()
    assert fit.steps_done == 4


def test_nan_loss_and_nan_parameter():
    p = torch.nn.Parameter(torch.ones(2))
    with pytest.raises(FitDivergedError, match=r"loss is nan at step 3; last finite loss"):
        Fit(lambda s: (p ** 2).sum() * (float("nan") if s == 3 else 1.0), {"p": ParamGroup([p], lr=0.01)},
            steps=5).run()
    q = torch.nn.Parameter(torch.ones(2))
    huge = ParamGroup([q], lr=1e30, optimizer="sgd")  # finite gradient, a step that overflows float32
    with pytest.raises(FitDivergedError, match=r"parameter 0 of group 'q' became NaN/Inf .* step 0.*max 1"):
        Fit(lambda s: (q * 1e10).sum(), {"q": huge}, steps=2, clip_spikes=None).run()


def _spike_run(clip):
    p = torch.nn.Parameter(torch.zeros(4))
    trace = []

    def loss_fn(step):
        w = 1e6 if step == 5 else 1.0
        return (p * w).sum()

    fit = Fit(loss_fn, {"p": ParamGroup([p], lr=0.1, optimizer="sgd")}, steps=8, clip_spikes=clip,
              callbacks=[lambda s, loss, log: trace.append(p.detach().clone())])
    return fit.run(), trace


def test_spike_clipping_bounds_the_step():
    result, trace = _spike_run(10.0)
    moved = (trace[5] - trace[4]).abs().max()
    assert float(moved) == pytest.approx(0.1 * 10.0, rel=1e-6)  # each coordinate: 1e6 x (10 x 2 / 2e6) = 10
    assert result.logs[5]["clip/p"] == pytest.approx(10.0 * 2.0 / 2e6)  # norm 2e6 cut to 10 x 2
    assert all("clip/p" not in log for k, log in enumerate(result.logs) if k != 5)
    assert result.logs[5]["grad_norm/p"] == pytest.approx(2e6)
    _, free = _spike_run(None)
    assert float((free[5] - free[4]).abs().max()) == pytest.approx(1e5)


def test_group_start_freezes_until_then():
    a = torch.nn.Parameter(torch.ones(2))
    b = torch.nn.Parameter(torch.ones(2))
    trace = []
    fit = Fit(lambda s: (a ** 2).sum() + (b ** 2).sum(),
              {"a": ParamGroup([a], lr=0.1), "b": ParamGroup([b], lr=0.1, start=3)}, steps=5,
              callbacks=[lambda s, loss, log: trace.append((a.detach().clone(), b.detach().clone()))])
    result = fit.run()
    for k in range(3):
        assert torch.equal(trace[k][1], torch.ones(2)) and result.logs[k]["lr/b"] == 0.0
        assert "grad_norm/b" not in result.logs[k]
        assert not torch.equal(trace[k][0], torch.ones(2))
    assert not torch.equal(trace[3][1], torch.ones(2)) and result.logs[3]["lr/b"] == 0.1
    assert int(fit.optimizers["b"].state[b]["step"]) == 2  # Adam moments start at the start step


def test_schedules_apply():
    p = torch.nn.Parameter(torch.zeros(1, dtype=F64))
    steps = 6
    result = Fit(lambda s: p.sum(), {"p": ParamGroup([p], lr=1.0, optimizer="sgd", schedule=cosine_schedule)},
                 steps=steps).run()
    want = [cosine_schedule(k, steps) for k in range(steps)]
    assert [log["lr/p"] for log in result.logs] == want
    assert float(p.detach()) == pytest.approx(-sum(want))
    assert cosine_schedule(0, 10) == 1.0 and cosine_schedule(5, 10) == pytest.approx(0.5)


def test_callback_stops_early_and_writes_checkpoint(tmp_path):
    p = torch.nn.Parameter(torch.ones(2))
    result = Fit(lambda s: ((p ** 2).sum(), {"half": 0.5}), {"p": ParamGroup([p], lr=0.1)}, steps=50,
                 checkpoint_dir=tmp_path, checkpoint_every=100, callbacks=[lambda s, loss, log: s == 2]).run()
    assert result.stopped_early and result.steps_done == 3 and len(result.losses) == 3
    assert result.logs[0]["half"] == 0.5 and result.seconds >= 0
    assert torch.load(tmp_path / CHECKPOINT_NAME, weights_only=False)["steps_done"] == 3


def test_atomic_write_keeps_old_checkpoint(tmp_path, monkeypatch):
    p = torch.nn.Parameter(torch.ones(3))
    fit = Fit(lambda s: (p ** 2).sum(), {"p": ParamGroup([p], lr=0.1)}, steps=4, checkpoint_dir=tmp_path,
              checkpoint_every=2)
    real_save = torch.save

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 partial bytes")
        raise OSError("disk full")

    calls = {"n": 0}

    def save_then_break(obj, f, *args, **kwargs):
        calls["n"] += 1
        return (real_save if calls["n"] == 1 else broken_save)(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_then_break)
    with pytest.raises(OSError, match="disk full"):
        fit.run()  # step 2 checkpoint written, step 4 write crashes mid-way
    monkeypatch.setattr(torch, "save", real_save)
    assert sorted(x.name for x in tmp_path.iterdir()) == [CHECKPOINT_NAME]
    ckpt = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=False)
    assert ckpt["steps_done"] == 2 and len(ckpt["losses"]) == 2
    q = torch.nn.Parameter(torch.ones(3))
    again = Fit(lambda s: (q ** 2).sum(), {"p": ParamGroup([q], lr=0.1)}, steps=4, checkpoint_dir=tmp_path)
    assert again.load_checkpoint() == 2 and torch.equal(q.detach(), ckpt["params"]["p"][0])


def test_progress_bar(capsys):
    p = torch.nn.Parameter(torch.ones(2))
    result = Fit(lambda s: (p ** 2).sum(), {"p": ParamGroup([p], lr=0.1)}, steps=3, progress=True).run()
    assert result.steps_done == 3
    assert "fit" in capsys.readouterr().err


@pytest.mark.parametrize("kwargs,err,match", [
    (dict(steps=0), ValueError, "steps must be positive"),
    (dict(steps=2, checkpoint_every=0), ValueError, "checkpoint_every must be positive"),
    (dict(steps=2, clip_spikes=-1.0), ValueError, "clip_spikes"),
    (dict(steps=2, resume=True), ValueError, "resume=True needs a checkpoint_dir"),
    (dict(steps=2, callbacks=[3]), TypeError, r"callbacks\[0\]"),
])
def test_bad_arguments(kwargs, err, match):
    p = torch.nn.Parameter(torch.ones(2))
    with pytest.raises(err, match=match):
        Fit(lambda s: p.sum(), {"p": ParamGroup([p], lr=0.1)}, **kwargs)


def test_bad_groups_and_losses():
    p = torch.nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match="leaf tensor with requires_grad"):
        Fit(lambda s: p.sum(), {"p": ParamGroup([p * 2], lr=0.1)}, steps=1)
    with pytest.raises(ValueError, match="already in group 'a'"):
        Fit(lambda s: p.sum(), {"a": ParamGroup([p], lr=0.1), "b": ParamGroup([p], lr=0.1)}, steps=1)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        Fit(lambda s: p.sum(), {"p": ParamGroup([p], lr=0.1, optimizer="lbfgs")}, steps=1)
    with pytest.raises(ValueError, match="lr must be a finite number"):
        Fit(lambda s: p.sum(), {"p": ParamGroup([p], lr=math.inf)}, steps=1)
    with pytest.raises(TypeError, match="scalar tensor"):
        Fit(lambda s: p * 2, {"p": ParamGroup([p], lr=0.1)}, steps=1).run()
    with pytest.raises(ValueError, match="does not depend on any parameter"):
        Fit(lambda s: torch.zeros(()), {"p": ParamGroup([p], lr=0.1)}, steps=1).run()


def _adversarial_problem():
    """An image fitted with an L1 term plus a patch-GAN term whose discriminator trains alongside."""
    from lumigrad.losses import AdversarialLoss, PatchDiscriminator

    g = torch.Generator().manual_seed(7)
    real = torch.rand(2, 16, 16, 3, generator=g)
    image = torch.nn.Parameter(torch.rand(2, 16, 16, 3, generator=g))
    torch.manual_seed(3)
    adversary = AdversarialLoss(PatchDiscriminator(3, width=8, layers=2), lr=1e-3)

    def loss_fn(step):
        adversary.discriminator_step(real, image)
        return (image - real).abs().mean() + 0.1 * adversary.generator_loss(image)

    return loss_fn, {"image": ParamGroup([image], lr=0.02)}, image, adversary


def test_extra_state_resumes_an_adversarial_fit_bit_for_bit(tmp_path):
    loss_fn, groups, whole, adv = _adversarial_problem()
    Fit(loss_fn, groups, steps=6).run()
    loss_fn, groups, image, adv = _adversarial_problem()
    with pytest.raises(KeyboardInterrupt):
        Fit(loss_fn, groups, steps=6, checkpoint_dir=tmp_path, checkpoint_every=2, callbacks=[_Crash(4)],
            extra_state={"adversary": adv}).run()
    loss_fn, groups, image, adv = _adversarial_problem()
    Fit(loss_fn, groups, steps=6, checkpoint_dir=tmp_path, resume=True, extra_state={"adversary": adv}).run()
    assert torch.equal(image, whole)
    with pytest.raises(ValueError, match="has no state for extra_state\\['other'\\]"):
        Fit(loss_fn, groups, steps=6, checkpoint_dir=tmp_path, resume=True,
            extra_state={"adversary": adv, "other": adv}).run()
    with pytest.raises(TypeError, match="extra_state\\['x'\\] needs state_dict"):
        Fit(loss_fn, groups, steps=6, extra_state={"x": object()})


def test_sparse_gradients_step_only_the_rows_they_touch():
    """A hash-grid table (sparse row gradients) trains with ``optimizer="sparse_adam"``: the loss falls, rows no
    step touched stay bit-identical, the gradient norm is logged, and a NaN in a sparse gradient is caught."""
    from lumigrad.volume.fields import HashGridEncoding

    enc = HashGridEncoding([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]], num_levels=2, features_per_level=2,
                           log2_table_size=10, base_resolution=4, max_resolution=8, implementation="torch")
    before = enc.table.detach().clone()
    points = torch.rand(64, 3, generator=torch.Generator().manual_seed(0)) * 0.5  # one corner of the box
    target = torch.ones(64, enc.table.shape[1] * 2)

    def loss_fn(step):
        return ((enc(points) - target) ** 2).mean()

    result = Fit(loss_fn, {"table": ParamGroup([enc.table], lr=0.1, optimizer="sparse_adam")}, steps=5,
                 seed=0, clip_spikes=2.0).run()
    assert result.losses[-1] < result.losses[0]
    enc(points).sum().backward()
    touched = enc.table.grad.coalesce().indices()[0].unique()
    untouched = torch.ones(enc.table.shape[0], dtype=torch.bool)
    untouched[touched] = False
    assert untouched.any() and torch.equal(enc.table.detach()[untouched], before[untouched])
    assert not torch.equal(enc.table.detach()[touched], before[touched])

    def inf_gradient_loss(step):  # finite loss (0), infinite gradient: d sqrt(u) / du at u = 0
        e = enc(points)
        return torch.sqrt(e - e.detach()).sum()

    with pytest.raises(FitDivergedError, match="gradient of group 'table' parameter 0 has .* NaN/Inf"):
        Fit(inf_gradient_loss, {"table": ParamGroup([enc.table], lr=0.1, optimizer="sparse_adam")}, steps=2, seed=0).run()
