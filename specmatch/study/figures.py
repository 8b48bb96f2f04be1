"""The report's figures, drawn with matplotlib's Agg backend and returned as PNG bytes (the HTML embeds them)."""

from __future__ import annotations

import io
from collections import defaultdict
from typing import Sequence

import numpy as np

from .collect import CellData
from .stats import GFID, Correlation


# fixed margins: tight_layout measures every tick label and costs more than the drawing itself
MARGINS = {"left": 0.12, "right": 0.97, "bottom": 0.12, "top": 0.91}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    _pyplot().close(fig)
    return buffer.getvalue()


def spectra_figure(cells: Sequence[CellData]) -> bytes | None:
    """Every autoencoder's latent band distribution (mean over its seeds) over the delta targets (dashed)."""
    by_recipe: dict[str, dict[int, list[float]]] = defaultdict(dict)
    reference = None
    for data in cells:
        if data.spectrum is None:
            continue
        # several denoisers on one autoencoder share its spectrum: one entry per autoencoder and seed
        by_recipe[data.cell.recipe][data.cell.seed] = data.spectrum["latent"]["mean"]
        reference = reference or data.spectrum
    if reference is None:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100, gridspec_kw=MARGINS)
    n_bins = len(reference["latent"]["mean"])
    k = np.arange(1, n_bins + 1)
    if reference.get("image"):
        ax.plot(k, reference["image"]["mean"], color="black", linewidth=1, label="image (delta=0)")
    for delta, target in sorted(reference.get("targets", {}).items(), key=lambda kv: float(kv[0])):
        if float(delta) != 0:
            ax.plot(k, target["mean"], linestyle="--", color="grey", linewidth=1 + float(delta),
                    label=f"target delta={delta}")
    for recipe, by_seed in sorted(by_recipe.items()):
        dists = [d for d in by_seed.values() if len(d) == n_bins]  # another bin count cannot be overlaid
        if not dists:
            continue
        mean = np.mean(np.asarray(dists, dtype=float), axis=0)
        ax.plot(k, mean, linewidth=2, marker="o", markersize=3, label=f"{recipe} latent (n={len(dists)})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("radial frequency bin")
    ax.set_ylabel("normalised log band power")
    ax.set_title("latent spectra and delta targets")
    ax.legend(fontsize=7)
    return _png(fig)


def curve_key(rows: Sequence[dict]) -> str | None:
    """The loss drawn for a stage: loss/total, else the first loss/ term."""
    keys = {k for r in rows for k in r if k.startswith("loss/")}
    return "loss/total" if "loss/total" in keys else (sorted(keys)[0] if keys else None)


def curves_figure(cells: Sequence[CellData]) -> bytes | None:
    """Loss against step per stage; one line per group, the mean over its seeds at each logged step."""
    by_stage: dict[str, list[tuple[str, dict]]] = defaultdict(list)
    for data in cells:
        for row in data.curves:
            by_stage[str(row.get("stage", "?"))].append((data.cell.group, row))
    stages = sorted(by_stage)
    if not stages:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(stages), figsize=(5.5 * len(stages), 4), dpi=100, squeeze=False,
                             gridspec_kw={**MARGINS, "wspace": 0.3})
    for ax, stage in zip(axes[0], stages):
        key = curve_key([row for _, row in by_stage[stage]])
        series: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        for group, row in by_stage[stage]:
            if key and isinstance(row.get(key), (int, float)):
                series[group][row["step"]].append(float(row[key]))
        for group, steps in sorted(series.items()):
            xs = sorted(steps)
            ax.plot(xs, [np.mean(steps[s]) for s in xs], label=group)
        ax.set_xlabel("step")
        ax.set_ylabel(key or "loss")
        ax.set_title(f"{stage}: {key or 'no loss logged'} (mean over seeds)")
        if series:
            ax.legend(fontsize=7)
    return _png(fig)


def scatter_figure(cells: Sequence[CellData], corr: Correlation, target: str = GFID) -> bytes:
    """One diagnostic against gFID, a colour per group, Spearman's rho in the title."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 3.4), dpi=100, gridspec_kw={**MARGINS, "left": 0.17, "bottom": 0.15})
    groups: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for data in cells:
        values = data.values()
        if corr.diagnostic in values and target in values:
            groups[data.cell.group].append((values[corr.diagnostic], values[target]))
    for group, points in sorted(groups.items()):
        x, y = zip(*points)
        ax.scatter(x, y, label=group, s=22)
    ax.set_xlabel(corr.diagnostic, fontsize=8)
    ax.set_ylabel(target)
    ax.set_title(f"Spearman rho={corr.rho:.2f}, p={corr.p:.2g}, N={corr.n}", fontsize=9)
    ax.legend(fontsize=6)
    return _png(fig)
