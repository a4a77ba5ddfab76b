"""A ``torchrun`` entry point for the teardown test: join the group with ``init_distributed``, make an optimiser
(which imports PyTorch's compiler stack), run a few collectives, destroy the group; exit 3 if a gloo thread
is still alive (``/proc/self/task``, Linux) two seconds later, so the group outlived ``destroy_process_group``
(checked at once, rank 0's ``gloo_tcp_loop`` was seen alive once on a loaded machine: the wait with a garbage
collection lets a thread that is already on its way out finish; a group kept alive stays found)."""

import gc
import os
import sys
import time

import torch
import torch.distributed as dist

from lumigrad.optim import init_distributed


def thread_names():
    names = []
    for task in os.listdir("/proc/self/task"):
        try:
            names.append(open(f"/proc/self/task/{task}/comm").read().strip())
        except FileNotFoundError:  # the thread ended after the listing
            pass
    return names


def main():
    strategy = init_distributed()
    x = torch.zeros(3, requires_grad=True)
    torch.optim.Adam([x])
    x.grad = torch.ones(3)
    strategy.reduce_gradients([x])
    strategy.any_rank(False)
    strategy.barrier()
    dist.destroy_process_group()
    gc.collect()
    deadline = time.monotonic() + 2.0
    while (alive := [name for name in thread_names() if "gloo" in name]) and time.monotonic() < deadline:
        time.sleep(0.01)
    print(f"rank {strategy.rank}: gloo threads after destroy_process_group: {alive}", flush=True)
    sys.exit(3 if alive else 0)


if __name__ == "__main__":
    main()
