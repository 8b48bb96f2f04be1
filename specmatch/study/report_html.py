"""report.html: one self-contained file that opens offline. Figures are inline base64 PNGs, the style sheet is
inline, no external script or font; all text is escaped. A tiny inline script counts the images that decoded
and writes ``data-figures-ok="N/M"`` on <body>, which the browser test reads."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from . import figures
from .report import LEGEND, TABLE_HEADER, StudyResults, correlation_cells, headline, table_rows, timing_rows
from .stats import GFID

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; font-size: 13px; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.sig { color: #b00; font-weight: bold; }
.figures { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; }
figcaption { font-size: 12px; color: #555; }
img { max-width: 100%; image-rendering: pixelated; }
.grid img { width: 320px; }
p.legend, p.note { font-size: 12px; color: #555; max-width: 70em; }
"""

CHECK_SCRIPT = """
window.addEventListener("load", function () {
  var images = document.images, ok = 0;
  for (var i = 0; i < images.length; i++) {
    if (images[i].complete && images[i].naturalWidth > 0) { ok++; }
  }
  document.body.setAttribute("data-figures-ok", ok + "/" + images.length);
});
"""


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def table(header: list[str], rows: list[list[str]], sig_column: int | None = None) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = "".join(f'<td class="sig">{esc(c)}</td>' if i == sig_column and c else f"<td>{esc(c)}</td>"
                        for i, c in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_html(results: StudyResults) -> str:
    parts = [f"<h1>{esc(results.title)}</h1>",
             f"<p>baseline: <b>{esc(results.baseline or 'none')}</b>; groups: {esc(', '.join(results.groups()))}; "
             f"cells with results: {len(results.cells)}; missing or failed: {len(results.missing)}</p>",
             "<h2>Results</h2>", *_headline(results), f'<p class="legend">{esc(LEGEND)}</p>',
             table(TABLE_HEADER, table_rows(results), sig_column=TABLE_HEADER.index("sig."))]
    parts += _spectra(results) + _curves(results) + _grids(results) + _scatter(results) + _recipe_diffs(results)
    parts += ["<h2>Wall time</h2>", table(*timing_rows(results))]
    parts += ["<h2>Missing or failed cells</h2>"]
    parts += [table(["cell", "status", "reason"], [list(m) for m in results.missing])] if results.missing \
        else ["<p>none</p>"]
    if results.notes:
        parts += ["<h2>Notes</h2>", "<ul>" + "".join(f"<li>{esc(n)}</li>" for n in results.notes) + "</ul>"]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(results.title)}</title><style>{STYLE}</style></head>\n<body>\n" + "\n".join(parts)
            + f"\n<script>{CHECK_SCRIPT}</script>\n</body></html>\n")


def _headline(results: StudyResults) -> list[str]:
    lines = headline(results)
    if not lines:
        return []
    return ["<p>Differences from the baseline at p &lt; 0.05 (paired t-test; mean difference [95 % CI]):</p>",
            "<ul>" + "".join(f"<li>{esc(line)}</li>" for line in lines) + "</ul>"]


def _draw(draw, *args, out: list[str]) -> bytes | None:
    """A figure, or None with the reason appended to ``out``: a malformed run file costs one figure, never the
    report."""
    try:
        return draw(*args)
    except Exception as e:  # noqa: BLE001 - any drawing error becomes a line in the report
        out.append(f"<p>figure not drawn: {esc(type(e).__name__)}: {esc(e)}</p>")
        return None


def _spectra(results: StudyResults) -> list[str]:
    out = ["<h2>Latent spectra</h2>"]
    png = _draw(figures.spectra_figure, results.cells, out=out)
    if png is None:
        return out if len(out) > 1 else out + ["<p>no cell has a spectrum.json</p>"]
    return out + ['<p class="note">radial DCT band distribution of each autoencoder\'s latent (mean over its '
                  "seeds' spectrum.json) against the image (delta=0) and the delta targets (dashed)</p>",
                  img(png, "latent spectra and delta targets")]


def _curves(results: StudyResults) -> list[str]:
    out = ["<h2>Training curves</h2>"]
    png = _draw(figures.curves_figure, results.cells, out=out)
    if png is None:
        return out if len(out) > 1 else out + ["<p>no cell has a metrics.jsonl</p>"]
    return out + [img(png, "training curves")]


def _grids(results: StudyResults) -> list[str]:
    """For each group, its lowest seed's reconstruction and sample grids side by side."""
    rows = []
    for group in results.groups():
        cells = sorted((d for d in results.cells if d.cell.group == group), key=lambda d: d.cell.seed)
        data = next((d for d in cells if d.grids), None)
        if data is None:
            continue
        shown = []
        for name in ("reconstructions", "samples"):
            path: Path | None = data.grids.get(name)
            if path is None:
                shown.append(f"<td>no {name}.png</td>")
                continue
            try:
                png = path.read_bytes()
            except OSError:
                shown.append(f"<td>{esc(path)} not readable</td>")
                continue
            shown.append(f'<td><figure class="grid">{img(png, f"{data.cell.id} {name}")}'
                         f"<figcaption>{esc(name)} ({esc(data.cell.id)})</figcaption></figure></td>")
        rows.append(f"<tr><th>{esc(group)}</th>{''.join(shown)}</tr>")
    out = ["<h2>Reconstructions and samples</h2>"]
    if not rows:
        return out + ["<p>no cell has image grids</p>"]
    return out + ['<p class="note">reconstructions.png: originals above reconstructions</p>',
                  "<table><thead><tr><th>group</th><th>reconstructions</th><th>samples</th></tr></thead><tbody>"
                  + "".join(rows) + "</tbody></table>"]


def _scatter(results: StudyResults) -> list[str]:
    out = [f"<h2>Diagnostics against {esc(GFID)}</h2>"]
    if not results.correlations:
        return out + [f"<p>no diagnostic has {esc(GFID)} alongside it in 3 or more cells</p>"]
    rows = [correlation_cells(c) for c in results.correlations]
    figs = []
    for c in results.correlations:
        png = _draw(figures.scatter_figure, results.cells, c, out=figs)
        if png is not None:
            figs.append(f"<figure>{img(png, f'{c.diagnostic} against {GFID}')}"
                        f"<figcaption>{esc(c.diagnostic)}</figcaption></figure>")
    out += ['<p class="note">Spearman rank correlation over all cells with both numbers</p>',
            table(["diagnostic", "rho", "p", "N"], rows), f'<div class="figures">{"".join(figs)}</div>']
    others = [correlation_cells(c) for c in results.metric_correlations]
    if others:
        out += [f'<p class="note">The other metrics against {esc(GFID)}, for comparison (a diagnostic that ranks '
                f'the cells no better than these adds little)</p>', table(["metric", "rho", "p", "N"], others)]
    return out


def _recipe_diffs(results: StudyResults) -> list[str]:
    """The resolved recipe of each group against the baseline's, at a seed both have where possible."""
    from specmatch.compare import diff_recipes

    out = ["<h2>Recipes: what differs from the baseline</h2>"]
    groups = results.groups()
    reference = results.baseline or (groups[0] if groups else None)
    if reference is None:
        return out + ["<p>no recipes</p>"]
    base_cells = {d.cell.seed: d for d in results.cells if d.cell.group == reference}
    for group in groups:
        if group == reference:
            continue
        cells = sorted((d for d in results.cells if d.cell.group == group), key=lambda d: d.cell.seed)
        other = next((d for d in cells if d.cell.seed in base_cells), cells[0])
        base = base_cells.get(other.cell.seed) or next(iter(base_cells.values()))
        rows = [[key, _show(a), _show(b)] for key, a, b in diff_recipes(base.recipe, other.recipe)]
        out.append(f"<h3>{esc(group)} ({esc(other.cell.id)}) against {esc(reference)} ({esc(base.cell.id)})</h3>")
        out.append(table(["key", reference, group], rows) if rows else "<p>the resolved recipes are identical</p>")
    return out


def _show(value: object) -> str:
    return "(absent)" if value is None else str(value)
