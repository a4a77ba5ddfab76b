"""Start ``lumigrad`` (or a test entry point) under ``torchrun`` for the distributed tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[2]
FAULTS = Path(__file__).with_name("rank_faults.py")


def environment(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    env.pop("WORLD_SIZE", None)
    env.update(extra or {})
    return env


def torchrun(args: List[str], *, nproc: int = 2, torchrun_args: List[str] = (), script: Optional[Path] = None,
             env: Optional[Dict[str, str]] = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node N [-m lumigrad | SCRIPT] ARGS``; the completed process."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               *torchrun_args]
    command += [str(script)] if script is not None else ["-m", "lumigrad"]
    proc = subprocess.Popen(command + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=environment(env), cwd=str(ROOT), start_new_session=True)
    return finish(proc, timeout)


def finish(proc: subprocess.Popen, timeout: float) -> subprocess.CompletedProcess:
    """Wait for ``proc``; past ``timeout`` kill its whole process group (torchrun's workers too) and fail."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"{proc.args} ran past {timeout} s:\n{(out or '')[-2000:]}\n{(err or '')[-2000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_nodes(args: List[str], *, timeout: float = 300) -> List[subprocess.CompletedProcess]:
    """Two ``torchrun`` agents, one process each, as nodes 0 and 1 meeting at 127.0.0.1 (torchrun's static
    rendezvous: ``--nnodes 2 --node-rank K --master-addr ADDR --master-port PORT`` on each machine)."""
    port = free_port()
    procs = []
    for node in range(2):
        command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1",
                   f"--node-rank={node}", "--master-addr=127.0.0.1", f"--master-port={port}", "-m", "lumigrad",
                   *args]
        procs.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      env=environment(), cwd=str(ROOT), start_new_session=True))
    return [finish(p, timeout) for p in procs]
