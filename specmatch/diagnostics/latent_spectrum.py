"""``latent-spectrum``: radial DCT band distributions of images and latents (method.md s8, the paper's
spectrum figures).

Per image, the normalised radial DCT band-power distribution of the image (tilted by (k+1)^delta) and of its
posterior-sample latent; mean and std over images; KL(delta-target || latent) of the mean distributions; the
log-log slope of the latent's distribution. The figures use center "none", remove_dc False, log power, 16
bins, which are the defaults here. Each KL is also given under ESM's training settings (center "mean", DC
removed), where the latent's arbitrary mean offset does not fill bin 0. Cost: one encoder pass per image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from .common import encode_latents


def loglog_slope(dist: torch.Tensor) -> float:
    """Least-squares slope of log p_k against log k (k = 1..n_bins), ignoring empty bins."""
    p = dist.double().flatten()
    k = torch.arange(1, p.numel() + 1, dtype=torch.float64, device=p.device)
    keep = p > 0
    if keep.sum() < 2:
        return float("nan")
    x, y = k[keep].log(), p[keep].log()
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / (x * x).sum())


def kl_divergence(p: torch.Tensor, q: torch.Tensor, eps: float = 1e-8) -> float:
    """KL(p || q) of two distributions over bins, each renormalised to sum 1 (as method.md s8's table)."""
    p = p.double() / p.double().sum()
    q = q.double() / q.double().sum()
    return float((p * ((p + eps).log() - (q + eps).log())).sum())


@torch.no_grad()
def spectrum_report(images: torch.Tensor, latents: torch.Tensor, *, deltas: Sequence[float] = (0.0, 1.0),
                    n_bins: int = 16, center: str = "none", remove_dc: bool = False) -> dict[str, Any]:
    from specmatch.spectral import esm_distributions

    report: dict[str, Any] = {"n_images": int(images.shape[0]), "n_bins": n_bins, "center": center,
                              "remove_dc": remove_dc, "targets": {}}
    latent_dist = None
    for delta in deltas:
        p, q = esm_distributions(images, latents, delta=delta, n_bins=n_bins, center=center, remove_dc=remove_dc)
        if latent_dist is None:
            latent_dist = q
            report["image"] = {"mean": p.mean(0).tolist(), "std": p.std(0, unbiased=False).tolist()} \
                if delta == 0 else None
        # the same KL under ESM's training settings (spatial mean removed, DC power zeroed): with DC kept, bin 0
        # is dominated by the latent's arbitrary mean offset
        p_esm, q_esm = esm_distributions(images, latents, delta=delta, n_bins=n_bins, center="mean",
                                         remove_dc=True)
        report["targets"][f"{delta:g}"] = {"mean": p.mean(0).tolist(), "std": p.std(0, unbiased=False).tolist(),
                                           "kl_to_latent": kl_divergence(p.mean(0), q.mean(0)),
                                           "kl_to_latent_dc_removed": kl_divergence(p_esm.mean(0), q_esm.mean(0)),
                                           "slope": loglog_slope(p.mean(0))}
    if report.get("image") is None:
        p0, _ = esm_distributions(images, latents, delta=0.0, n_bins=n_bins, center=center, remove_dc=remove_dc)
        report["image"] = {"mean": p0.mean(0).tolist(), "std": p0.std(0, unbiased=False).tolist()}
    report["image"]["slope"] = loglog_slope(torch.tensor(report["image"]["mean"]))
    report["latent"] = {"mean": latent_dist.mean(0).tolist(), "std": latent_dist.std(0, unbiased=False).tolist(),
                        "slope": loglog_slope(latent_dist.mean(0))}
    return report


def spectrum_scalars(report: dict[str, Any]) -> dict[str, float]:
    """Flat numbers of a spectrum report for metrics.json and training curves."""
    out = {f"spectrum_kl_delta{d}": t["kl_to_latent"] for d, t in report["targets"].items()}
    out.update({f"spectrum_kl_delta{d}_dc_removed": t["kl_to_latent_dc_removed"]
                for d, t in report["targets"].items()})
    out["spectrum_latent_slope"] = report["latent"]["slope"]
    return out


def plot_spectrum(report: dict[str, Any], path, title: str = "") -> None:
    """The paper's spectrum-distribution figure: image (solid), delta-targets (dashed), latent (bold)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = list(range(1, report["n_bins"] + 1))
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot(k, report["image"]["mean"], color="black", label="image (delta=0)")
    for delta, t in report["targets"].items():
        if float(delta) == 0:
            continue
        ax.plot(k, t["mean"], linestyle="--", label=f"target delta={delta} (KL {t['kl_to_latent']:.4f})")
    lat = report["latent"]
    ax.errorbar(k, lat["mean"], yerr=lat["std"], color="tab:red", linewidth=2, capsize=2,
                label=f"latent (slope {lat['slope']:.2f})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("radial frequency bin")
    ax.set_ylabel("normalised log band power")
    ax.set_title(title or f"spectrum distribution, N={report['n_images']}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


class LatentSpectrum:
    """Radial DCT band distributions of images and posterior-sample latents, KL from each delta-target to the
    latent, log-log slopes; the figure ``spectrum.png``."""

    figure = "spectrum.png"

    def __init__(self, deltas: Sequence[float] = (0.0, 1.0), n_bins: int = 16, batch_size: int = 32,
                 seed: int = 0):
        self.deltas, self.n_bins, self.batch_size, self.seed = tuple(deltas), int(n_bins), int(batch_size), seed

    @torch.no_grad()
    def run(self, autoencoder, images: torch.Tensor) -> dict[str, Any]:
        if images.shape[0] == 0:
            return {}
        latents = encode_latents(autoencoder, images, batch_size=self.batch_size, seed=self.seed)
        report = spectrum_report(images, latents, deltas=self.deltas, n_bins=self.n_bins)
        report["n"] = report["n_images"]
        report["settings"] = {"deltas": list(self.deltas), "n_bins": self.n_bins, "latent": "posterior sample",
                              "seed": self.seed, "center": "none", "remove_dc": False}
        return report

    def scalars(self, report: dict[str, Any]) -> dict[str, float]:
        return spectrum_scalars(report) if report else {}

    def write_figures(self, report: dict[str, Any], folder: Path) -> None:
        if report:
            plot_spectrum(report, Path(folder) / self.figure)
