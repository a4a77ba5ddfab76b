"""A ``torchrun`` entry point for the fault tests: ``lumigrad`` with one scripted fault on one rank.

``LUMIGRAD_TEST_FAULT=KIND:RANK:STEP`` (KIND ``kill``: SIGKILL itself on the first attempt, ``hang``: sleep
forever, ``desync``: nudge a parameter after the step, ``extralog``: log one more value than the other ranks,
``budget``: its clock allows the shape error's in-between recording where the others' may not, ``diverge``: its
loss raises ``FitDivergedError``, as a shard rendering NaN does) makes rank RANK
misbehave when it reaches step STEP;
``{rank}`` in an argument becomes the process's rank (a different config per rank). The fault lives here, in
the test, not in the library.
"""

import os
import signal
import sys
import time

import torch

from lumigrad.cli.main import main
from lumigrad.fitting import metrics as metrics_module
from lumigrad.fitting import problem as problem_module
from lumigrad.optim.fit import FitDivergedError


def install_fault():
    rank = int(os.environ.get("RANK", "0"))
    fault = os.environ.get("LUMIGRAD_TEST_FAULT")
    if fault:
        kind, fault_rank, fault_step = fault.split(":")
        original = problem_module.Problem.loss

        def loss(self, step):
            first_attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
            if rank == int(fault_rank) and step == int(fault_step):
                if kind == "kill" and first_attempt:
                    os.kill(os.getpid(), signal.SIGKILL)
                if kind == "hang":
                    time.sleep(3600)
                if kind == "diverge":
                    raise FitDivergedError(f"step {step}: the rendered images hold NaN values (injected)")
                if kind == "desync":
                    with torch.no_grad():
                        leaf = next(iter(self.groups.values()))[0].leaves[0]
                        leaf.add_(1e-3)
            loss, log = original(self, step)
            if kind == "extralog" and rank == int(fault_rank) and step == int(fault_step):
                log["fault/extra"] = 1.0
            return loss, log

        problem_module.Problem.loss = loss
        if kind == "budget" and rank == int(fault_rank):
            due = metrics_module.RecordingBudget.due

            def budget_due(self, step, last):
                return True if step == int(fault_step) else due(self, step, last)

            metrics_module.RecordingBudget.due = budget_due


if __name__ == "__main__":
    install_fault()
    sys.exit(main([a.replace("{rank}", os.environ.get("RANK", "0")) for a in sys.argv[1:]]))
