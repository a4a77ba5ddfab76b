"""Build lumigrad's API reference (HTML, from the docstrings) with pdoc: ``./dev docs`` writes it to docs/api/.

    python scripts/api_docs.py [OUT_DIR]     (default docs/api; open OUT_DIR/index.html)

pdoc ships with the ``test`` extra (and the ``docs`` one); tests/test_api_docs.py builds the reference into a
temporary folder on every test run, so a docstring pdoc cannot read fails the suite instead of rotting.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import List

#: The subpackages documented besides ``lumigrad`` itself (the names in ``lumigrad.__all__`` that are modules
#: get their pages through it; listing them again would make pdoc document them twice).
SUBPACKAGES = ("animation", "cameras", "conventions", "fitting", "fluid", "geometry", "integrators", "io",
               "limits", "losses", "optim", "physics", "raster", "raytrace", "scene", "shading", "volume")


def modules() -> List[str]:
    """The module specs passed to pdoc: ``lumigrad`` and each of :data:`SUBPACKAGES` not already in its
    ``__all__``."""
    import lumigrad

    return ["lumigrad"] + [f"lumigrad.{name}" for name in SUBPACKAGES if name not in lumigrad.__all__]


def build(out_dir: Path) -> List[str]:
    """Write the HTML reference to ``out_dir``; return pdoc's warnings (messages), also printed to stderr."""
    try:
        import pdoc
        import pdoc.render
    except ImportError as err:
        raise SystemExit("the API reference needs pdoc: pip install 'lumigrad[docs]' (or the test extra)") from err
    pdoc.render.configure(docformat="google", footer_text="lumigrad API reference",
                          search=True, show_source=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdoc.pdoc(*modules(), output_directory=Path(out_dir))
    messages = [str(w.message) for w in caught]
    for message in messages:
        print(f"warning: {message}", file=sys.stderr)
    return messages


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/api")
    build(out)
    print(f"API reference: {out / 'index.html'}")
