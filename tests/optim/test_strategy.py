"""The ``Strategy`` seam of ``Fit``: the local strategy changes nothing; a fake two-rank strategy shows that every
hook is called where the docs say (gradient reduction before the step, is_main gating checkpoints, progress and
callbacks, per-rank seeds and RNG states in checkpoints, divergence raised on every rank together)."""

from __future__ import annotations

from typing import Dict, List, Optional

import pytest
import torch

from lumigrad.optim import Fit, FitDivergedError, LocalStrategy, ParamGroup, Strategy, read_checkpoint
from lumigrad.optim.fit import CHECKPOINT_NAME, CheckpointError


class FakeTwoRankStrategy:
    """Rank ``rank`` of a simulated two-process fit; the other rank is played by this object.

    * the other rank's gradient is three times this rank's, so the mean the reduction leaves is twice this rank's
      (a parameter without a gradient here gets a zero one, as a real all-reduce would give it);
    * the other rank's loss is 2 higher and it logs the same values, so the mean loss is 1 higher;
    * ``other_divergence`` / ``other_stop``, set by a test while a step runs, are what the other rank reports;
    * rank 0 is the main rank; ``gather_object`` returns ``[ours, other_state]`` there, ``None`` on rank 1;
    * ``rank_seed(seed) = seed + 1000 * rank``.
    """

    world_size = 2

    def __init__(self, rank: int = 1, other_state: Optional[dict] = None):
        self.rank = rank
        self.is_main = rank == 0
        self.other_state = other_state
        self.other_divergence: Optional[str] = None
        self.other_stop = False
        self.calls: List[str] = []
        self.sent: List[object] = []  # what this rank handed to gather_object
        self.divergences_seen: List[Optional[str]] = []

    def rank_seed(self, seed: int) -> int:
        return seed + 1000 * self.rank

    def reduce_gradients(self, params):
        self.calls.append("reduce_gradients")
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            p.grad.mul_(2.0)  # (ours + 3 x ours) / 2

    def reduce_log(self, loss: float, values: Dict[str, float]):
        self.calls.append("reduce_log")
        return loss + 1.0, dict(values)  # (loss + (loss + 2)) / 2

    def combine_divergence(self, message):
        self.calls.append("combine_divergence")
        self.divergences_seen.append(message)
        return message if message is not None else self.other_divergence

    def any_rank(self, flag: bool) -> bool:
        self.calls.append("any_rank")
        return bool(flag) or self.other_stop

    def gather_object(self, obj):
        self.calls.append("gather_object")
        self.sent.append(obj)
        return [obj, self.other_state] if self.is_main else None

    def barrier(self):
        self.calls.append("barrier")


def _linear(strategy=None, steps=4, **kwargs):
    """``loss = sum(c * p)`` under plain SGD (lr 0.1): each step moves ``p`` by ``-0.1 x`` the gradient used."""
    p = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    unused = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
    c = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    fit = Fit(lambda step: ((c * p).sum(), {"step": float(step)}),
              {"p": ParamGroup([p], lr=0.1, optimizer="sgd"), "unused": ParamGroup([unused], lr=0.1, optimizer="sgd")},
              steps=steps, clip_spikes=None, strategy=strategy, **kwargs)
    return fit, p, unused, c


def test_local_strategy_changes_nothing():
    s = LocalStrategy()
    assert isinstance(s, Strategy) and (s.rank, s.world_size, s.is_main) == (0, 1, True)
    assert s.rank_seed(7) == 7 and s.combine_divergence(None) is None and s.combine_divergence("x") == "x"
    assert s.reduce_log(1.5, {"a": 2.0}) == (1.5, {"a": 2.0}) and s.gather_object(3) == [3]
    assert s.any_rank(False) is False and s.any_rank(True) is True
    fit, p, unused, c = _linear()
    assert isinstance(fit.strategy, LocalStrategy)
    result = fit.run()
    assert torch.equal(p.detach(), -0.1 * 4 * c)
    assert unused.grad is None and torch.equal(unused.detach(), torch.ones(2, dtype=torch.float64))
    assert result.losses[0] == 0.0 and result.logs[0]["grad_norm/p"] == pytest.approx(float(c.norm()))
    assert isinstance(FakeTwoRankStrategy(), Strategy)


def test_gradients_and_logged_values_are_reduced_before_they_are_used():
    fake = FakeTwoRankStrategy()
    fit, p, unused, c = _linear(fake)
    result = fit.run()
    assert torch.equal(p.detach(), -0.1 * 2 * 4 * c)  # every step used the doubled (averaged) gradient
    assert torch.equal(unused.grad, torch.zeros(2, dtype=torch.float64))  # no gradient here: zero, not None
    assert result.logs[0]["grad_norm/p"] == pytest.approx(2 * float(c.norm()))  # norms, clipping: reduced grads
    assert result.losses[0] == 1.0 and result.logs[2]["step"] == 2.0  # the mean over ranks is recorded
    per_step = ["combine_divergence", "reduce_log", "reduce_gradients", "combine_divergence", "combine_divergence",
                "any_rank"]
    assert fake.calls == per_step * 4


def test_only_the_main_rank_writes_checkpoints_shows_progress_and_runs_callbacks(tmp_path, capsys):
    fake = FakeTwoRankStrategy(rank=1)
    seen = []
    fit, p, _, _ = _linear(fake, steps=4, checkpoint_dir=tmp_path / "ckpt", checkpoint_every=2, progress=True,
                           callbacks=[lambda step, loss, log: seen.append(step)])
    fit.run()
    assert seen == [] and not (tmp_path / "ckpt" / CHECKPOINT_NAME).exists()
    assert "fit" not in capsys.readouterr().err  # no progress bar
    assert fake.calls.count("gather_object") == 2 and fake.calls.count("barrier") == 2  # after steps 2 and 4
    assert fake.calls.index("gather_object") < fake.calls.index("barrier")
    assert [set(state) for state in fake.sent] == [{"generator", "torch", "cuda"}] * 2  # its RNG state was sent

    main = FakeTwoRankStrategy(rank=0, other_state={"generator": None, "torch": None, "cuda": None})
    fit, p, _, _ = _linear(main, steps=4, checkpoint_dir=tmp_path / "main", checkpoint_every=2, progress=True,
                           callbacks=[lambda step, loss, log: seen.append(step)])
    fit.run()
    assert seen == [0, 1, 2, 3] and (tmp_path / "main" / CHECKPOINT_NAME).exists()
    assert "fit" in capsys.readouterr().err


def test_a_stop_asked_on_the_main_rank_stops_every_rank():
    fake = FakeTwoRankStrategy(rank=1)

    def loss_fn(step):
        fake.other_stop = step == 2  # the main rank's callback asks to stop after step 2
        return (p ** 2).sum()

    p = torch.nn.Parameter(torch.ones(2))
    result = Fit(loss_fn, {"p": ParamGroup([p], lr=0.1)}, steps=10, strategy=fake).run()
    assert result.stopped_early and result.steps_done == 3


def test_a_divergence_on_another_rank_raises_here_too():
    fake = FakeTwoRankStrategy(rank=1)
    p = torch.nn.Parameter(torch.ones(2))

    def loss_fn(step):
        if step == 3:
            fake.other_divergence = "rank 0: loss is nan at step 3"
        return (p ** 2).sum()

    fit = Fit(loss_fn, {"p": ParamGroup([p], lr=0.1, optimizer="sgd")}, steps=10, strategy=fake)
    with pytest.raises(FitDivergedError, match="^rank 0: loss is nan at step 3$"):
        fit.run()
    assert fit.steps_done == 3  # step 3 (the 4th) was not taken: 3 steps with the doubled gradient 4 p
    assert p.detach().tolist() == pytest.approx([0.6 ** 3] * 2)
    assert fake.calls[-1] == "combine_divergence"  # raised at the first check of step 3, before other collectives

    # this rank's own divergence is handed to the others first, then raised here with its own message
    fake = FakeTwoRankStrategy(rank=1)
    q = torch.nn.Parameter(torch.ones(2))

    def bad(step):
        if step == 1:
            raise FitDivergedError("step 1: scene parameter 'x' became NaN")
        return (q ** 2).sum()

    with pytest.raises(FitDivergedError, match="^step 1: scene parameter 'x' became NaN$"):
        Fit(bad, {"q": ParamGroup([q], lr=0.1)}, steps=5, strategy=fake).run()
    assert fake.divergences_seen[-1] == "step 1: scene parameter 'x' became NaN"

    fake = FakeTwoRankStrategy(rank=1)
    r = torch.nn.Parameter(torch.ones(2))
    r.register_hook(lambda g: torch.full_like(g, float("nan")))
    with pytest.raises(FitDivergedError, match="gradient of group 'r' parameter 0 has 2 NaN/Inf"):
        Fit(lambda s: (r ** 2).sum(), {"r": ParamGroup([r], lr=0.1)}, steps=5, strategy=fake).run()
    assert fake.divergences_seen == [None, fake.divergences_seen[1]] and "gradient" in fake.divergences_seen[1]


def _noisy_fit(strategy=None, **kwargs):
    """A loss that draws from the fit's generator only (never the global RNG)."""
    g = torch.Generator()
    target = torch.linspace(-1, 1, 8, dtype=torch.float64)
    p = torch.nn.Parameter(torch.zeros(8, dtype=torch.float64))
    draws = []

    def loss_fn(step):
        idx = torch.randperm(8, generator=g)[:3]
        draws.append(idx.tolist())
        noise = 0.01 * torch.randn(3, generator=g, dtype=torch.float64)
        return ((p[idx] - target[idx] + noise) ** 2).sum()

    fit = Fit(loss_fn, {"p": ParamGroup([p], lr=0.05)}, steps=10, seed=7, generator=g, global_rng=False,
              strategy=strategy, **kwargs)
    return fit, p, draws


def test_each_rank_seeds_its_generator_and_the_global_rng_is_left_alone():
    torch.manual_seed(5)
    state = torch.get_rng_state()
    fit, _, draws = _noisy_fit(FakeTwoRankStrategy(rank=1))
    fit.run()
    assert torch.equal(torch.get_rng_state(), state)  # global_rng=False: neither seeded nor drawn from
    assert draws[0] == torch.randperm(8, generator=torch.Generator().manual_seed(1007))[:3].tolist()
    local, _, local_draws = _noisy_fit()
    local.run()
    assert local_draws[0] == torch.randperm(8, generator=torch.Generator().manual_seed(7))[:3].tolist()
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        Fit(lambda s: s, {"p": ParamGroup([torch.nn.Parameter(torch.ones(1))], lr=0.1)}, steps=1, generator=3)


def test_checkpoints_hold_every_rank_rng_state_and_each_rank_resumes_its_own(tmp_path):
    other = {"generator": torch.Generator().manual_seed(1234).get_state(), "torch": None, "cuda": None}
    fit, _, _ = _noisy_fit(FakeTwoRankStrategy(rank=0, other_state=other), checkpoint_dir=tmp_path)
    fit.run()
    ranks = read_checkpoint(tmp_path / CHECKPOINT_NAME)["rng"]["ranks"]
    assert len(ranks) == 2 and ranks[0]["torch"] is None  # global_rng=False: no global state kept
    assert torch.equal(ranks[0]["generator"], fit.generator.get_state())
    assert torch.equal(ranks[1]["generator"], other["generator"])

    as_rank1, _, _ = _noisy_fit(FakeTwoRankStrategy(rank=1), checkpoint_dir=tmp_path)
    assert as_rank1.load_checkpoint() == 10
    assert torch.equal(as_rank1.generator.get_state(), other["generator"])
    alone, _, _ = _noisy_fit(checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointError, match=r"over 2 process\(es\) and this fit runs over 1; resume it with 2"):
        alone.load_checkpoint()


class _Crash:
    def __init__(self, at):
        self.at = at

    def __call__(self, step, loss, log):
        if step == self.at:
            raise KeyboardInterrupt


@pytest.mark.parametrize("strategy", [None, "fake main"])
def test_generator_resume_is_bit_for_bit_whatever_the_global_rng_does(tmp_path, strategy):
    make = (lambda: None) if strategy is None else (lambda: FakeTwoRankStrategy(rank=0, other_state={
        "generator": None, "torch": None, "cuda": None}))
    whole, p_whole, draws_whole = _noisy_fit(make())
    whole_result = whole.run()
    crashing, _, _ = _noisy_fit(make(), checkpoint_dir=tmp_path, checkpoint_every=3, callbacks=[_Crash(7)])
    with pytest.raises(KeyboardInterrupt):
        crashing.run()
    torch.manual_seed(999)
    torch.rand(100)
    resumed, p, draws = _noisy_fit(make(), checkpoint_dir=tmp_path, resume=True)
    result = resumed.run()
    assert result.losses == whole_result.losses and torch.equal(p, p_whole)
    assert draws == draws_whole[6:]  # steps 6..9 redone from the checkpoint after step 6


def test_bad_strategies_are_refused():
    p = torch.nn.Parameter(torch.ones(1))
    groups = {"p": ParamGroup([p], lr=0.1)}

    class NoBarrier(FakeTwoRankStrategy):
        barrier = None

    with pytest.raises(TypeError, match=r"NoBarrier has no method barrier\(\)"):
        Fit(lambda s: p.sum(), groups, steps=1, strategy=NoBarrier())
    bad_rank = FakeTwoRankStrategy()
    bad_rank.rank = 2
    with pytest.raises(ValueError, match="0 <= rank < world_size; got rank 2, world_size 2"):
        Fit(lambda s: p.sum(), groups, steps=1, strategy=bad_rank)
    with pytest.raises(TypeError, match=r"strategy.is_main must be a bool"):
        bad_main = FakeTwoRankStrategy()
        bad_main.is_main = 1
        Fit(lambda s: p.sum(), groups, steps=1, strategy=bad_main)


def test_format_1_checkpoints_still_resume_and_bad_rng_states_are_refused(tmp_path):
    p = torch.nn.Parameter(torch.ones(2))
    Fit(lambda s: (p ** 2).sum() * torch.rand(()), {"p": ParamGroup([p], lr=0.1)}, steps=3,
        checkpoint_dir=tmp_path).run()
    state = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    mine = state["rng"]["ranks"][0]
    assert state["format"] == 2 and mine["torch"] is not None  # global_rng=True (default): the global state kept
    old = {**state, "format": 1, "rng": {"torch": mine["torch"], "cuda": mine["cuda"]}}  # as lumigrad wrote it
    torch.save(old, tmp_path / CHECKPOINT_NAME)
    torch.manual_seed(123)
    q = torch.nn.Parameter(torch.ones(2))
    fit = Fit(lambda s: (q ** 2).sum(), {"p": ParamGroup([q], lr=0.1)}, steps=3, seed=4, checkpoint_dir=tmp_path)
    assert fit.load_checkpoint() == 3 and torch.equal(torch.get_rng_state(), mine["torch"])
    assert torch.equal(fit.generator.get_state(), torch.Generator().manual_seed(4).get_state())  # none saved

    bad = {**state, "rng": {"ranks": [{**mine, "generator": torch.zeros(7, dtype=torch.uint8)}]}}
    torch.save(bad, tmp_path / CHECKPOINT_NAME)
    r = torch.nn.Parameter(torch.ones(2))
    fit = Fit(lambda s: (r ** 2).sum(), {"p": ParamGroup([r], lr=0.1)}, steps=3, checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointError, match="the RNG state of rank 0 does not fit this fit's generator on cpu"):
        fit.load_checkpoint()
    assert torch.equal(r.detach(), torch.ones(2)) and fit.steps_done == 0
    torch.save({**state, "rng": {"ranks": []}}, tmp_path / CHECKPOINT_NAME)
    with pytest.raises(CheckpointError, match="checkpoint key 'rng' must be a dict with a non-empty list 'ranks'"):
        fit.load_checkpoint()
