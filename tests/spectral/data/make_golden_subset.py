"""Write the golden subset shipped with the tests from the authors' full reference data.

    python tests/spectral/data/make_golden_subset.py [--source ../shared/golden]

The full data (method.md s9, 16 MB) lives outside the project. This keeps the cases and arrays that
tests/spectral/test_golden.py asserts on, reduced without changing any reference value:

* ESM: esm1 (256 px image, f8 latent: the blur skipped at h == 32 and the x8 bicubic), esm5 (8 bins), esm6
  (center "none" with DC kept), esm7 (linear power). Of each image only the rows and columns that the blur and
  bicubic resize read are stored (for esm1 the 4 of every 8 that the x8 bicubic taps); every other pixel has
  weight exactly 0 in the authors' computation, which this script checks bit for bit. Left out for size: esm0
  (esm1 with delta 0), esm2 and esm3 (f16 with blur, 256 px images), esm4 (128 px).
* DSM: all five cases, cut to the first sample, the first 2 x 2 blocks and at most 2 latent channels. The
  low-pass acts on each block of each channel alone, so a cut input and its cut reference are exact.

Outputs, next to this script: golden_subset.json (the kept cases, fields as in the full JSON) and
golden_subset.npz (float32 arrays, ``<id>_x_rows`` / ``<id>_x_cols``: where the stored image pixels go).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
PROJECT_ROOT = HERE.parents[2]
ESM_CASES = ("esm1", "esm5", "esm6", "esm7")
DSM_BLOCKS = 2  # blocks kept per side
DSM_LATENT_CHANNELS = 2


def authors_image_on_grid(x: torch.Tensor, case: dict) -> torch.Tensor:
    """The authors' step 1: depthwise Gaussian conv (zero padding) unless h == 32, then torch bicubic."""
    h = case["latent_size"]
    if h != case["blur_skipped_when_latent_size"]:
        size, sigma = case["blur_kernel"], case["blur_sigma"]
        t = torch.arange(size, dtype=torch.float64) - size // 2
        g = torch.exp(-(t.view(-1, 1) ** 2 + t.view(1, -1) ** 2) / (2 * sigma**2))
        kernel = (g / g.sum()).to(x.dtype).expand(x.shape[1], 1, size, size)
        x = F.conv2d(x, kernel, padding=size // 2, groups=x.shape[1])
    return F.interpolate(x, size=(h, h), mode="bicubic", align_corners=False)


def read_pixels(case: dict) -> np.ndarray:
    """Indices along one axis of the pixels that reach the latent grid (any nonzero composite weight)."""
    n = case["image_size"]
    eye = torch.eye(n, dtype=torch.float64).view(n, 1, n, 1).expand(n, 3, n, n).contiguous()
    response = authors_image_on_grid(eye, case)  # row i of image k = e_k: which outputs pixel row k reaches
    return np.flatnonzero(response.abs().amax(dim=(1, 2, 3)).numpy() > 0)


def esm_subset(case: dict, arrays) -> dict:
    cid = case["id"]
    x = arrays[f"{cid}_x"]
    rows = cols = read_pixels(case)
    stored = x[:, :, rows][:, :, :, cols]
    rebuilt = np.zeros_like(x)
    rebuilt[:, :, rows[:, None], cols] = stored
    full, reduced = (authors_image_on_grid(torch.from_numpy(a), case) for a in (x, rebuilt))
    assert torch.equal(full, reduced), f"{cid}: the dropped pixels change the image on the latent grid"
    out = {f"{cid}_x": stored, f"{cid}_x_rows": rows.astype(np.int16), f"{cid}_x_cols": cols.astype(np.int16)}
    for key in ("z", "grad_z", "target_dist", "latent_dist"):
        out[f"{cid}_{key}"] = arrays[f"{cid}_{key}"]
    return out


def dsm_subset(case: dict, arrays) -> dict:
    cid, side = case["id"], DSM_BLOCKS * case["block_size"]
    out = {}
    for key in ("x", "z"):
        channels = 3 if key == "x" else DSM_LATENT_CHANNELS
        for suffix in ("", "_masked"):
            out[f"{cid}_{key}{suffix}"] = arrays[f"{cid}_{key}{suffix}"][:1, :channels, :side, :side]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=PROJECT_ROOT.parent / "shared" / "golden")
    args = parser.parse_args()
    cases = json.loads((args.source / "reference_esm_dsm.json").read_text())["cases"]
    kept, out = [], {}
    with np.load(args.source / "reference_esm_dsm.npz") as arrays:
        for case in cases:
            if case["kind"] == "esm" and case["id"] in ESM_CASES:
                out.update(esm_subset(case, arrays))
            elif case["kind"] == "dsm":
                out.update(dsm_subset(case, arrays))
            else:
                continue
            kept.append(case)
    assert all(a.dtype in (np.float32, np.int16) for a in out.values())
    np.savez_compressed(HERE / "golden_subset.npz", **out)
    note = "Subset of ../shared/golden/reference_esm_dsm.json written by make_golden_subset.py (see its docstring)."
    (HERE / "golden_subset.json").write_text(json.dumps({"note": note, "cases": kept}, indent=1) + "\n")
    size = (HERE / "golden_subset.npz").stat().st_size
    print(f"kept {[c['id'] for c in kept]}; golden_subset.npz {size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
