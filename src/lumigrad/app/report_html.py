"""The self-contained HTML page (``report.html``) that ``lumigrad fit`` writes into its output folder.

The page has no external dependency (inline CSS, one tiny inline script, no fonts or CDNs) and links
images and downloads by *relative* paths, so the output folder can be moved, zipped or served as is.
Every linked file must exist when the page is written: a report never points at a missing image.

The inline script counts the images that really decoded once the page has loaded and records it as
``<body data-images-loaded="ok/total">`` (and a title suffix), which a headless browser can check.
"""

from __future__ import annotations

import datetime
import html
import math
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, List, Mapping, Sequence
from urllib.parse import quote

__all__ = ["Figure", "format_value", "write_html_report"]

# Images narrower than this (CSS px) are small renders: upscale them without blurring.
_PIXELATED_BELOW = 400
_LIST_PREVIEW = 4
# Columns of the parameter table, in order, and the metric keys that fill them.
_PARAM_COLUMNS = (("true", ("true", "target", "gt")), ("initial", ("initial", "init", "start")),
                  ("final", ("final", "fitted", "value")), ("error", ("abs_error", "mean_abs_error", "error", "err")))


@dataclass
class Figure:
    """One image of the report.

    Attributes:
        title: short heading shown above the image.
        path: image file relative to the output folder, e.g. ``"images/views.png"``.
        caption: optional sentence shown under the image.
    """

    title: str
    path: str
    caption: str = ""


def format_value(value: Any) -> str:
    """Format a metric for people: 4 significant digits, scientific notation for tiny or huge numbers.

    Integers print exactly, lists show their first 4 items and their length, strings pass through.

    Example: ``format_value(0.000123456) == "1.235e-04"``, ``format_value(35.14159) == "35.14"``,
    ``format_value(12345.6) == "12350"``, ``format_value([1, 2, 3, 4, 5]) == "[1, 2, 3, 4, …] (5)"``.
    """
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        a = abs(value)
        if a == 0:
            return "0"
        if 1e-3 <= a < 1e4:
            return f"{value:.4g}"
        if 1e4 <= a < 1e6:
            return f"{float(f'{value:.4g}'):.0f}"
        return f"{value:.3e}"
    if isinstance(value, (list, tuple)):
        items = ", ".join(format_value(v) for v in value[:_LIST_PREVIEW])
        if len(value) > _LIST_PREVIEW:
            return f"[{items}, …] ({len(value)})"
        return f"[{items}]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {format_value(v)}" for k, v in value.items()) + "}"
    # numpy / torch scalars and anything else with a float value
    try:
        return format_value(value.item())
    except (AttributeError, ValueError, TypeError):
        return str(value)


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _resolve(out_dir: Path, rel: str, what: str) -> tuple[Path, str]:
    """Check ``rel`` is a relative path to an existing file inside ``out_dir``; return (file, href)."""
    rel_str = os.fspath(rel)
    posix = PurePosixPath(rel_str.replace(os.sep, "/"))
    if not rel_str or posix.is_absolute() or Path(rel_str).is_absolute() or ".." in posix.parts:
        raise ValueError(f"{what} path must be relative to the output folder {out_dir} and stay inside it; "
                         f"got {rel_str!r}")
    file = out_dir / Path(*posix.parts)
    if not file.is_file():
        raise ValueError(f"{what} file does not exist: {rel_str!r} (looked for {file})")
    href = "/".join(quote(part) for part in posix.parts)
    return file, href


def _image_size(file: Path) -> tuple[int, int] | None:
    try:
        from PIL import Image

        with Image.open(file) as im:
            return im.size
    except Exception:  # noqa: BLE001 - a size is only a layout hint
        return None


def _human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # unreachable


def _kv_table(items: Mapping[str, Any], cls: str = "kv") -> str:
    rows = []
    for key, value in items.items():
        num = " class=\"num\"" if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
        rows.append(f"<tr><th scope=\"row\">{_e(key)}</th><td{num}>{_e(format_value(value))}</td></tr>")
    return f"<table class=\"{cls}\"><tbody>{''.join(rows)}</tbody></table>"


def _param_table(params: Mapping[str, Any]) -> str:
    known = {k for _, keys in _PARAM_COLUMNS for k in keys}
    extra: List[str] = []
    for entry in params.values():
        if isinstance(entry, Mapping):
            extra += [k for k in entry if k not in known and k not in extra]
    head = "".join(f"<th>{_e(c)}</th>" for c in ["name", *(c for c, _ in _PARAM_COLUMNS), *extra])
    rows = []
    for name, entry in params.items():
        if not isinstance(entry, Mapping):
            entry = {"final": entry}
        cells = []
        for _, keys in _PARAM_COLUMNS:
            value = next((entry[k] for k in keys if k in entry), None)
            cells.append(f"<td class=\"num\">{_e(format_value(value))}</td>")
        cells += [f"<td class=\"num\">{_e(format_value(entry.get(k)))}</td>" for k in extra]
        rows.append(f"<tr><th scope=\"row\"><code>{_e(name)}</code></th>{''.join(cells)}</tr>")
    return (f"<div class=\"scroll\"><table class=\"params\"><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _metrics_html(metrics: Mapping[str, Any]) -> str:
    scalars = {k: v for k, v in metrics.items() if not isinstance(v, Mapping)}
    blocks = [f"<div>{_kv_table(scalars)}</div>"] if scalars else []
    for key, value in metrics.items():
        if isinstance(value, Mapping) and key != "parameters" and value:
            blocks.append(f"<div><h3>{_e(key)}</h3>{_nested_table(value)}</div>")
    parts = [f"<div class=\"blocks\">{''.join(blocks)}</div>"] if blocks else []
    params = metrics.get("parameters")
    if isinstance(params, Mapping) and params:
        parts.append(f"<h3>Parameters</h3>{_param_table(params)}")
    return "".join(parts) or "<p class=\"muted\">No metrics.</p>"


def _nested_table(d: Mapping[str, Any]) -> str:
    rows = []
    for key, value in d.items():
        if isinstance(value, Mapping) and value:
            cell = _nested_table(value)
            rows.append(f"<tr><th scope=\"row\">{_e(key)}</th><td>{cell}</td></tr>")
        else:
            num = " class=\"num\"" if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
            rows.append(f"<tr><th scope=\"row\">{_e(key)}</th><td{num}>{_e(format_value(value))}</td></tr>")
    return f"<table class=\"kv\"><tbody>{''.join(rows)}</tbody></table>"


_CSS = """
:root { --fg:#1f2328; --muted:#656d76; --line:#d8dee4; --bg:#f6f8fa; --accent:#0969da; }
* { box-sizing:border-box; }
body { margin:0; background:#fff; color:var(--fg);
  font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; }
main { max-width:1180px; margin:0 auto; padding:28px 32px 48px; }
header { border-bottom:1px solid var(--line); margin-bottom:20px; padding-bottom:12px; }
h1 { font-size:26px; margin:0 0 6px; font-weight:600; }
h2 { font-size:19px; margin:28px 0 10px; font-weight:600; }
h3 { font-size:15px; margin:18px 0 8px; font-weight:600; color:var(--muted); }
.summary { margin:0; color:var(--fg); white-space:pre-line; }
.muted, footer { color:var(--muted); font-size:13px; }
table { border-collapse:collapse; font-size:14px; margin:4px 0; }
th, td { padding:5px 12px; border-bottom:1px solid var(--line); text-align:left; vertical-align:top; }
thead th { background:var(--bg); font-weight:600; border-bottom:2px solid var(--line); }
tbody th { font-weight:500; color:var(--muted); }
td.num { font-variant-numeric:tabular-nums; font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
  text-align:right; white-space:nowrap; }
.scroll { overflow-x:auto; }
table.kv td { min-width:8em; }
.blocks { display:flex; flex-wrap:wrap; gap:8px 48px; align-items:flex-start; }
.blocks h3 { margin-top:0; }
table.params { width:100%; }
table.params tbody th { color:var(--fg); overflow-wrap:anywhere; min-width:14em; }
table table { margin:0; }
code, pre { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:13px; }
.figures { display:grid; grid-template-columns:repeat(auto-fill,minmax(460px,1fr)); gap:20px; align-items:start; }
figure { margin:0; padding:12px; border:1px solid var(--line); border-radius:8px; background:#fff; }
figure h3 { margin:0 0 8px; color:var(--fg); }
figure.wide { grid-column:1 / -1; }
figure img { display:block; max-width:100%; height:auto; background:var(--bg); border-radius:4px; }
figure img.pixelated { image-rendering:pixelated; }
figcaption { color:var(--muted); font-size:13px; margin-top:6px; }
figure.broken img { min-height:40px; outline:2px dashed #cf222e; }
figure.broken figcaption::before { content:"image failed to load. "; color:#cf222e; font-weight:600; }
ul.assets { list-style:none; padding:0; margin:0; }
ul.assets li { padding:4px 0; border-bottom:1px solid var(--line); }
ul.assets a { color:var(--accent); text-decoration:none; }
ul.assets a:hover { text-decoration:underline; }
.size { color:var(--muted); font-size:13px; margin-left:8px; }
pre { background:var(--bg); border:1px solid var(--line); border-radius:6px; padding:12px; overflow:auto;
  max-height:480px; margin:0; }
details summary { cursor:pointer; font-weight:600; margin:28px 0 10px; font-size:17px; }
footer { margin-top:36px; border-top:1px solid var(--line); padding-top:10px; }
@media (max-width:700px) { main { padding:16px; } .figures { grid-template-columns:1fr; } }
"""

_SCRIPT = """
window.addEventListener("load", function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) {
    if (imgs[i].complete && imgs[i].naturalWidth > 0) { ok++; }
    else if (imgs[i].closest("figure")) { imgs[i].closest("figure").classList.add("broken"); }
  }
  document.body.dataset.imagesLoaded = ok + "/" + imgs.length;
  document.title += " (" + ok + "/" + imgs.length + " images)";
});
"""


def write_html_report(out_dir: str | os.PathLike, *, title: str, summary: str, metrics: Mapping[str, Any],
                      figures: Sequence[Figure], assets: Sequence[str] = (), config_text: str = "",
                      log_tail: Sequence[str] = ()) -> Path:
    """Write ``out_dir/report.html`` and return its path.

    Args:
        out_dir: the fit's output folder; every path below is relative to it.
        title: page title and main heading.
        summary: a sentence or short paragraph under the title (newlines are kept).
        metrics: the content of ``metrics.json``. Top-level scalars and lists become a key/value table,
            a ``"parameters"`` dict of ``{name: {"true", "initial", "final", "abs_error", ...}}`` becomes a
            table with columns name / true / initial / final / error, other nested dicts become sub-tables.
        figures: images shown in order, two per row on a laptop screen, each scaled to its column width.
        assets: files offered for download (``"assets/scene.glb"``, ``"metrics.json"``), with their sizes.
        config_text: the configuration used, shown verbatim.
        log_tail: last lines of the log, shown in a collapsed section.

    Returns:
        The path of the written ``report.html``.

    Raises:
        ValueError: a figure or asset path is absolute, leaves ``out_dir``, or names no existing file.

    All text is HTML-escaped. The file is written to a temporary name and renamed, so a page that is
    rewritten during a fit is never seen half-written.
    """
    out = Path(out_dir)
    fig_parts = []
    for k, fig in enumerate(figures):
        if not isinstance(fig, Figure):
            raise TypeError(f"figures[{k}] must be a Figure; got {type(fig).__name__}")
        file, href = _resolve(out, fig.path, f"figure {fig.title!r}")
        size = _image_size(file)
        attrs, fig_cls = "", ""
        if size is not None:
            w, h = size
            attrs = f" width=\"{w}\" height=\"{h}\""
            if w < _PIXELATED_BELOW:  # small render: integer upscale keeps pixels crisp
                attrs += f" class=\"pixelated\" style=\"width:{w * max(1, min(4, 1000 // w))}px\""
            if w >= 2 * h:  # a strip of views or a row of plots gets a full row
                fig_cls = " class=\"wide\""
        caption = f"<figcaption>{_e(fig.caption)}</figcaption>" if fig.caption else "<figcaption></figcaption>"
        fig_parts.append(f"<figure{fig_cls}><h3>{_e(fig.title)}</h3>"
                         f"<a href=\"{_e(href)}\"><img src=\"{_e(href)}\" alt=\"{_e(fig.title)}\"{attrs}></a>"
                         f"{caption}</figure>")
    asset_parts = []
    for rel in assets:
        file, href = _resolve(out, rel, "asset")
        asset_parts.append(f"<li><a href=\"{_e(href)}\" download>{_e(rel)}</a>"
                           f"<span class=\"size\">{_human_size(file.stat().st_size)}</span></li>")

    from .. import __version__

    stamp = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    body = [f"<header><h1>{_e(title)}</h1>"]
    if summary:
        body.append(f"<p class=\"summary\">{_e(summary)}</p>")
    body.append("</header>")
    body.append(f"<section id=\"metrics\"><h2>Metrics</h2>{_metrics_html(metrics)}</section>")
    if fig_parts:
        body.append(f"<section id=\"figures\"><h2>Figures</h2><div class=\"figures\">{''.join(fig_parts)}"
                    "</div></section>")
    if asset_parts:
        body.append(f"<section id=\"downloads\"><h2>Downloads</h2><ul class=\"assets\">{''.join(asset_parts)}"
                    "</ul></section>")
    if config_text:
        body.append(f"<section id=\"config\"><h2>Configuration</h2><pre>{_e(config_text)}</pre></section>")
    if log_tail:
        lines = list(log_tail)
        body.append(f"<details id=\"log\"><summary>Log (last {len(lines)} lines)</summary>"
                    f"<pre>{_e(chr(10).join(line.rstrip(chr(10)) for line in lines))}</pre></details>")
    body.append(f"<footer>Written {_e(stamp)} by lumigrad {_e(__version__)}.</footer>")

    page = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
            + "\n".join(body) + f"\n</main>\n<script>{_SCRIPT}</script>\n</body>\n</html>\n")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.html"
    tmp = out / ".report.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    return path
