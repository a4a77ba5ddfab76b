"""``python -m lumigrad ...``: the same as the ``lumigrad`` command."""

from .cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
