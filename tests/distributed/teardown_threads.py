"""A ``torchrun`` entry point for the teardown test: join the group with ``init_distributed``, make an optimiser
(which imports PyTorch's compiler stack), run a few collectives, destroy the group; exit 3 if a gloo thread
is still alive (``/proc/self/task``, Linux), so the group outlived ``destroy_process_group``."""

import os
import sys

import torch
import torch.distributed as dist

from lumigrad.optim import init_distributed


def thread_names():
    return [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]


def main():
    strategy = init_distributed()
    x = torch.zeros(3, requires_grad=True)
    torch.optim.Adam([x])
    x.grad = torch.ones(3)
    strategy.reduce_gradients([x])
    strategy.any_rank(False)
    strategy.barrier()
    dist.destroy_process_group()
    alive = [name for name in thread_names() if "gloo" in name]
    print(f"rank {strategy.rank}: gloo threads after destroy_process_group: {alive}", flush=True)
    sys.exit(3 if alive else 0)


if __name__ == "__main__":
    main()
