"""specmatch.spectral against the authors' golden outputs (method.md s9).

The golden values were produced by the authors' official ESM and DSM functions. The tests read the subset
shipped in ``tests/spectral/data`` (written from the full ``../shared/golden`` data by
``data/make_golden_subset.py``, which documents which cases it keeps and how inputs are cut without changing
any reference value), so they run everywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from specmatch.spectral import block_lowpass, esm_distributions, esm_loss

DATA_DIR = Path(__file__).resolve().parent / "data"
CASES = {c["id"]: c for c in json.loads((DATA_DIR / "golden_subset.json").read_text())["cases"]}


@pytest.fixture(scope="module")
def arrays():
    with np.load(DATA_DIR / "golden_subset.npz") as npz:
        return {k: npz[k] for k in npz.files}


def _ids(kind: str) -> list[str]:
    return [cid for cid, case in CASES.items() if case["kind"] == kind]


def _golden_image(arrays, case) -> torch.Tensor:
    """The case's image: stored pixels at their rows and columns, zeros where the computation never reads."""
    cid, size = case["id"], case["image_size"]
    stored = arrays[f"{cid}_x"]
    image = np.zeros(stored.shape[:2] + (size, size), dtype=stored.dtype)
    image[:, :, arrays[f"{cid}_x_rows"][:, None], arrays[f"{cid}_x_cols"]] = stored
    return torch.from_numpy(image)


@pytest.mark.parametrize("case_id", _ids("esm"))
def test_esm_matches_golden(arrays, case_id):
    case = CASES[case_id]
    assert case["blur_kernel"] == 7 and case["blur_sigma"] == 1.2 and case["blur_skipped_when_latent_size"] == 32
    image = _golden_image(arrays, case)
    latent = torch.from_numpy(arrays[f"{case_id}_z"]).requires_grad_(True)
    options = dict(
        delta=case["delta"], n_bins=case["n_bins"], center=case["center"], remove_dc=case["remove_dc"],
        log_power=case["log_power"], eps=case["eps"], blur="reference",
    )  # fmt: skip

    loss = esm_loss(image, latent, loss="kl", **options)
    loss.backward()
    assert loss.dtype == torch.float32
    assert abs(loss.item() - case["loss"]) <= 1e-5 * abs(case["loss"]), (loss.item(), case["loss"])

    grad_ref = arrays[f"{case_id}_grad_z"]
    grad_err = np.abs(latent.grad.numpy() - grad_ref).max()
    assert grad_err <= 1e-4 * np.abs(grad_ref).max(), (grad_err, np.abs(grad_ref).max())

    p, q = esm_distributions(image, latent.detach(), **options)
    np.testing.assert_allclose(p.numpy(), arrays[f"{case_id}_target_dist"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(q.numpy(), arrays[f"{case_id}_latent_dist"], rtol=0, atol=1e-5)


@pytest.mark.parametrize("case_id", _ids("dsm"))
def test_dsm_matches_golden(arrays, case_id):
    case = CASES[case_id]
    for key in ("x", "z"):
        source = torch.from_numpy(arrays[f"{case_id}_{key}"])
        masked = block_lowpass(source, case["mask_level"], case["block_size"])
        np.testing.assert_allclose(masked.numpy(), arrays[f"{case_id}_{key}_masked"], rtol=0, atol=1e-5)
