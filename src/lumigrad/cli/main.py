"""``lumigrad`` entry point: parses the sub-command and reports user mistakes without a traceback.

Parsing and ``--help`` import no torch and no Warp (each command module builds its parser with the standard
library and imports its implementation when it runs), so they answer at once.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from . import bench, demo, fit, gradcheck, render, warmup


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lumigrad",
        description="Differentiable rendering for PyTorch. Recover scene parameters from images by gradient descent.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"lumigrad {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo.add_parser(sub)
    render.add_parser(sub)
    gradcheck.add_parser(sub)
    fit.add_parser(sub)
    bench.add_parser(sub)
    warmup.add_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except _fit_diverged_error() as exc:
        print(f"lumigrad {args.command}: the fit diverged: {exc}", file=sys.stderr)
        return 3
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"lumigrad {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a read-only folder, a permission: the system's words, one line
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"lumigrad {args.command}: error: {where}{exc.strerror or _one_line(exc)}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"lumigrad {args.command}: error: out of memory; use smaller images, fewer views or a smaller "
              "lumigrad.limits budget", file=sys.stderr)
        return 2
    except RecursionError:
        print(f"lumigrad {args.command}: error: the input is nested too deeply", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = "; run the same command with --resume to continue from the last checkpoint" \
            if args.command == "fit" else ""
        print(f"lumigrad {args.command}: interrupted{hint}", file=sys.stderr)
        return 130


def _fit_diverged_error():
    """``FitDivergedError`` if its module is loaded, else ``()`` (a failure before any fit cannot be one), so
    this module need not import the optimiser and torch."""
    module = sys.modules.get("lumigrad.optim.fit")
    return module.FitDivergedError if module is not None else ()


def _one_line(exc: BaseException, limit: int = 1000) -> str:
    """The exception's message on one line, cut to ``limit`` characters (messages may quote hostile input)."""
    text = " ".join(str(exc).split("\n")).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


if __name__ == "__main__":
    sys.exit(main())
