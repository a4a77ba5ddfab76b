"""Sharding a step's views over ranks and weighting the shards' mean losses (lumigrad.optim.distributed)."""

import pytest
import torch

from lumigrad.optim import DistributedStrategy, init_distributed, launched_by_torchrun, shard, shard_weight


@pytest.mark.parametrize("n, world", [(5, 2), (3, 2), (7, 3), (4, 4), (6, 1)])
def test_shards_cover_the_views_once_in_order_and_weights_give_the_global_mean(n, world):
    views = torch.randperm(n, generator=torch.Generator().manual_seed(n))
    shards = [shard(views, rank, world) for rank in range(world)]
    assert torch.equal(torch.cat(shards), views)
    assert max(len(s) for s in shards) - min(len(s) for s in shards) <= 1
    per_view = torch.rand(n, dtype=torch.float64)
    # each rank's mean over its shard, weighted, then averaged over ranks (all_reduce / world) = global mean
    ranks = [shard_weight(len(s), n, world) * per_view[s].mean() for s in shards]
    assert float(sum(ranks) / world) == pytest.approx(float(per_view[views].mean()), rel=1e-12)


def test_more_ranks_than_views_is_refused_naming_both():
    with pytest.raises(ValueError, match="2 view.*3 ranks"):
        shard(torch.arange(2), 0, 3)


def test_without_torchrun_the_strategy_explains_how_to_start(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    assert not launched_by_torchrun()
    with pytest.raises(RuntimeError, match="torchrun --nproc-per-node"):
        init_distributed()
    with pytest.raises(RuntimeError, match="init_distributed"):
        DistributedStrategy()
    with pytest.raises(ValueError, match="timeout_s"):
        init_distributed(timeout_s=0)
    with pytest.raises(ValueError, match="backend"):
        init_distributed("mpi")
