"""``--device`` as every command spells it: ``cpu``, ``cuda``, ``cuda:N`` (or ``auto``), one help text, one check.

The option is parsed without torch (the ``lumigrad`` command's help must not load it); whether CUDA is there is
checked when the command runs, with one line saying what to do.
"""

from __future__ import annotations

import argparse
import re

_SPELLING = re.compile(r"^(cpu|auto|cuda(:[0-9]+)?)$")


def device_name(text: str) -> str:
    """``text`` if it spells a device (``cpu``, ``cuda``, ``cuda:N``, ``auto``); argparse's error otherwise."""
    if not _SPELLING.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device: use cpu, cuda, cuda:N (N a CUDA device "
                                         "number) or auto")
    return text


def add_device_argument(p, default: str = "cpu") -> None:
    """``--device DEVICE`` on the sub-command parser ``p``."""
    p.add_argument("--device", default=default, type=device_name, metavar="DEVICE",
                   help=f"where to run: cpu, cuda (the current CUDA device), cuda:N, or auto = cuda when available "
                        f"(default: {default})")


def resolve(args):
    """The ``torch.device`` of ``args.device``; ValueError naming ``--device`` when CUDA is asked for and absent."""
    from .._checks import resolve_device

    return resolve_device(args.device, "--device")
