"""Speed of specmatch.spectral against a straightforward re-implementation of the authors' code.

The baseline below follows the authors' functions step by step: an FFT-based DCT (Makhoul's algorithm, as
``torch_dct.dct`` 0.1.6 computes it), a depthwise Gaussian ``conv2d`` blur, ``F.interpolate`` bicubic, power,
radial binning with ``scatter_add``, log and KL; and for DSM, blocks cut out with ``unfold``, FFT DCT per
block, masking and the inverse DCT. The script first checks that baseline and specmatch agree (and, when
the golden data is present, that the baseline reproduces the authors' golden losses), then times both.

Run:  python benchmarks/spectral.py [--repeats N] [--threads T]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from specmatch.spectral import block_lowpass, esm_loss, lowpass_mask  # noqa: E402

GOLDEN = ROOT.parent / "shared" / "golden"

# ------------------------------------------------------------------------------------------------------
# Baseline: the authors' way (torch-dct style FFT DCT, conv2d blur, scatter binning)
# ------------------------------------------------------------------------------------------------------


def fft_dct(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal DCT-II along the last axis via one complex FFT of length N (Makhoul 1980, as torch_dct)."""
    shape = x.shape
    n = shape[-1]
    x = x.contiguous().view(-1, n)
    v = torch.cat([x[:, ::2], x[:, 1::2].flip([1])], dim=1)
    vc = torch.view_as_real(torch.fft.fft(v, dim=1))
    k = -torch.arange(n, dtype=x.dtype, device=x.device)[None, :] * math.pi / (2 * n)
    out = vc[:, :, 0] * torch.cos(k) - vc[:, :, 1] * torch.sin(k)
    out[:, 0] /= math.sqrt(n) * 2
    out[:, 1:] /= math.sqrt(n / 2) * 2
    return 2 * out.view(*shape)


def fft_idct(coeffs: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`fft_dct` (orthonormal DCT-III) via one inverse real FFT, as torch_dct.idct."""
    shape = coeffs.shape
    n = shape[-1]
    xv = coeffs.contiguous().view(-1, n) / 2
    xv[:, 0] *= math.sqrt(n) * 2
    xv[:, 1:] *= math.sqrt(n / 2) * 2
    k = torch.arange(n, dtype=coeffs.dtype, device=coeffs.device)[None, :] * math.pi / (2 * n)
    w_r, w_i = torch.cos(k), torch.sin(k)
    vt_r = xv
    vt_i = torch.cat([xv[:, :1] * 0, -xv.flip([1])[:, :-1]], dim=1)
    v_r = vt_r * w_r - vt_i * w_i
    v_i = vt_r * w_i + vt_i * w_r
    v = torch.fft.irfft(torch.complex(v_r, v_i), n=n, dim=1)
    x = v.new_zeros(v.shape)
    x[:, ::2] += v[:, : n - (n // 2)]
    x[:, 1::2] += v.flip([1])[:, : n // 2]
    return x.view(*shape)


def fft_dct_2d(x: torch.Tensor) -> torch.Tensor:
    return fft_dct(fft_dct(x).transpose(-1, -2)).transpose(-1, -2)


def fft_idct_2d(x: torch.Tensor) -> torch.Tensor:
    return fft_idct(fft_idct(x).transpose(-1, -2)).transpose(-1, -2)


def baseline_gaussian_blur(x: torch.Tensor, kernel_size: int = 7, sigma: float = 1.2) -> torch.Tensor:
    c = x.shape[1]
    ax = torch.arange(kernel_size, device=x.device, dtype=x.dtype) - kernel_size // 2
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    k = torch.exp(-(xx**2 + yy**2) / (2 * sigma**2))
    k = (k / k.sum()).view(1, 1, kernel_size, kernel_size).repeat(c, 1, 1, 1)
    return F.conv2d(x, k, padding=kernel_size // 2, groups=c)


def baseline_power(x: torch.Tensor, center: str, remove_dc: bool, eps: float) -> torch.Tensor:
    b, c, h, w = x.shape
    x = x.reshape(b * c, h, w).float()
    if center == "mean":
        x = x - x.mean(dim=(-2, -1), keepdim=True)
    power = (fft_dct_2d(x).view(b, c, h, w) ** 2).mean(dim=1).clamp_min(eps)
    if remove_dc:
        power[:, 0, 0] = 0.0
    return power


def baseline_radial_mean(power: torch.Tensor, n_bins: int, eps: float) -> torch.Tensor:
    b, h, w = power.shape
    yy = torch.arange(h, device=power.device).view(h, 1).float()
    xx = torch.arange(w, device=power.device).view(1, w).float()
    rr = torch.sqrt(yy**2 + xx**2)
    bin_id = torch.floor(rr / rr.max().clamp_min(1.0) * n_bins).long().clamp(0, n_bins - 1).view(-1)
    counts = torch.bincount(bin_id, minlength=n_bins).to(power.dtype).clamp_min(1.0)
    sums = torch.zeros(b, n_bins, device=power.device, dtype=power.dtype)
    sums = sums.scatter_add(1, bin_id.view(1, -1).expand(b, -1), power.view(b, -1))
    return sums / (counts.view(1, -1) + eps)


def baseline_esm_loss(x, z, delta=1.0, n_bins=16, center="mean", remove_dc=True, log_power=True, eps=1e-8):
    h, w = z.shape[-2:]
    x_blur = x if h == 32 else baseline_gaussian_blur(x)
    x_lat = F.interpolate(x_blur, size=(h, w), mode="bicubic", align_corners=False)
    sx = baseline_radial_mean(baseline_power(x_lat, center, remove_dc, eps), n_bins, eps)
    sz = baseline_radial_mean(baseline_power(z, center, remove_dc, eps), n_bins, eps)
    sx = sx * torch.arange(1, n_bins + 1, device=sx.device, dtype=sx.dtype).view(1, -1) ** delta
    if log_power:
        sx, sz = torch.log(sx + eps + 1.0), torch.log(sz + eps + 1.0)
    sx, sz = sx.clamp_min(0.0), sz.clamp_min(0.0)
    p = sx / (sx.sum(dim=1, keepdim=True) + eps)
    q = sz / (sz.sum(dim=1, keepdim=True) + eps)
    return (p * (torch.log(p + eps) - torch.log(q + eps))).sum(dim=1).mean()


def baseline_block_lowpass(x: torch.Tensor, mask_level: int, block_size: int = 8) -> torch.Tensor:
    b, c, h, w = x.shape
    bs = block_size
    blocks = x.unfold(2, bs, bs).unfold(3, bs, bs).contiguous().view(b, c, -1, bs, bs)
    coeffs = fft_dct_2d(blocks)
    u = torch.arange(bs, device=x.device).view(bs, 1)
    v = torch.arange(bs, device=x.device).view(1, bs)
    keep = ((u + v) < 2 * (bs - 1) - (mask_level - 1)).to(x.dtype)
    blocks = fft_idct_2d(coeffs * keep)
    image = blocks.view(b, c, h // bs, w // bs, bs, bs).permute(0, 1, 2, 4, 3, 5)
    return image.reshape(b, c, h, w)


# ------------------------------------------------------------------------------------------------------
# Checks and timing
# ------------------------------------------------------------------------------------------------------


def check_baseline_against_golden() -> str:
    """The baseline must reproduce the authors' golden losses (so it is the authors' algorithm)."""
    json_path, npz_path = GOLDEN / "reference_esm_dsm.json", GOLDEN / "reference_esm_dsm.npz"
    if not (json_path.is_file() and npz_path.is_file()):
        return f"golden data not found at {GOLDEN}; baseline-vs-golden check skipped"
    cases = json.loads(json_path.read_text())["cases"]
    arrays = np.load(npz_path)
    for case in cases:
        cid = case["id"]
        if case["kind"] == "esm":
            loss = baseline_esm_loss(
                torch.from_numpy(arrays[f"{cid}_x"]), torch.from_numpy(arrays[f"{cid}_z"]),
                delta=case["delta"], n_bins=case["n_bins"], center=case["center"],
                remove_dc=case["remove_dc"], log_power=case["log_power"],
            ).item()  # fmt: skip
            rel = abs(loss - case["loss"]) / abs(case["loss"])
            assert rel < 1e-5, f"baseline misses golden {cid}: {loss} vs {case['loss']}"
        else:
            for key in ("x", "z"):
                out = baseline_block_lowpass(
                    torch.from_numpy(arrays[f"{cid}_{key}"]), case["mask_level"], case["block_size"]
                )
                err = float(np.abs(out.numpy() - arrays[f"{cid}_{key}_masked"]).max())
                assert err < 1e-5, f"baseline misses golden {cid}_{key}: max abs err {err}"
    return f"baseline reproduces all {len(cases)} golden cases"


def esm_step(fn, x, z):
    """Forward + backward of one ESM loss; returns (loss, grad)."""
    z = z.detach().requires_grad_(True)
    loss = fn(x, z)
    loss.backward()
    return loss.detach(), z.grad


def median_ms_pair(first, second, repeats: int, warmup: int = 5) -> tuple[float, float]:
    """Median wall time (ms) of two functions, timed alternately so that background load hits both alike."""
    for _ in range(warmup):
        first()
        second()
    times: tuple[list, list] = ([], [])
    for _ in range(repeats):
        for fn, out in ((first, times[0]), (second, times[1])):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times[0]), 1e3 * statistics.median(times[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30, help="timed repetitions per case (median reported)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    load_before = os.getloadavg()[0]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, repeats {args.repeats}, "
        f"load average before the run {load_before:.2f}"
    )
    print(check_baseline_against_golden())

    batch = 8
    image = torch.rand(batch, 3, 256, 256) * 2 - 1
    cases = []  # (name, baseline fn, specmatch fn, target ratio)
    for name, channels, size in (("esm f16d16", 16, 16), ("esm f8d4", 4, 32)):
        latent = torch.randn(batch, channels, size, size)
        ref_loss, ref_grad = esm_step(baseline_esm_loss, image, latent)
        new_loss, new_grad = esm_step(esm_loss, image, latent)
        rel = abs(ref_loss.item() - new_loss.item()) / abs(ref_loss.item())
        grad_err = (ref_grad - new_grad).abs().max().item() / ref_grad.abs().max().item()
        assert rel < 1e-5 and grad_err < 1e-4, f"{name}: baseline and specmatch disagree ({rel}, {grad_err})"
        print(f"{name}: losses agree to {rel:.1e} relative, gradients to {grad_err:.1e} of max |grad|")
        target = 10.0 if channels == 16 else 2.0
        cases.append(
            (
                f"{name} fwd+bwd (B={batch}, 3x256^2 -> {channels}x{size}^2)",
                lambda latent=latent: esm_step(baseline_esm_loss, image, latent),
                lambda latent=latent: esm_step(esm_loss, image, latent),
                target,
            )
        )

    level = 8
    ref_low = baseline_block_lowpass(image, level)
    new_low = block_lowpass(image, level)
    low_err = (ref_low - new_low).abs().max().item()
    assert low_err < 1e-5, f"block_lowpass: baseline and specmatch disagree (max abs {low_err})"
    kept = int(lowpass_mask(8, level).sum())
    print(f"block_lowpass k={level}: outputs agree to {low_err:.1e} max abs ({kept}/64 coefficients kept)")
    cases.append(
        (
            f"block_lowpass k={level} b=8 (B={batch}, 3x256^2)",
            lambda: baseline_block_lowpass(image, level),
            lambda: block_lowpass(image, level),
            10.0,
        )
    )

    print()
    header = f"{'case':<50} {'baseline ms':>12} {'specmatch ms':>13} {'ratio':>7} {'target':>7}  result"
    print(header)
    print("-" * len(header))
    all_pass = True
    for name, baseline_fn, new_fn, target in cases:
        base_ms, new_ms = median_ms_pair(baseline_fn, new_fn, args.repeats)
        ratio = base_ms / new_ms
        ok = ratio >= target
        all_pass &= ok
        print(f"{name:<50} {base_ms:>12.2f} {new_ms:>13.2f} {ratio:>6.1f}x {target:>6.0f}x  {'PASS' if ok else 'FAIL'}")
    print()
    if load_before > 1.0:
        print(f"note: the machine was busy before the run (load {load_before:.2f}); timings are noisy")
    print("all speed targets met" if all_pass else "SOME SPEED TARGETS MISSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
