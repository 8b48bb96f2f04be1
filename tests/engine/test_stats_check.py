"""`specmatch stats --check-weights`: the bundled network's pool features against pytorch-fid's full network on
the same images. The real files are not available here, so the full network has random weights saved by the
test, and the "bundled" network is a stand-in equal to 1.1 x its pool features: the reported numbers then have
a closed form (relative difference 0.1; FID = 0.01 (|mu|^2 + tr sigma) of the full network's statistics), which
checks the plumbing, not the agreement of the real networks (see docs/evaluation.md for that)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow  # pytorch-fid's 24 M-parameter network at 299 x 299 on the CPU

SMOKE = Path(__file__).resolve().parents[2] / "recipes" / "smoke.toml"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class ScaledStandIn:
    """1.1 x the full network's pool features, in the bundled network's interface."""

    feature_dim = 2048
    sha256 = "1" * 64

    def __init__(self, full):
        self.full = full

    def describe(self) -> dict:
        return {"name": "scaled stand-in"}

    def __call__(self, images):
        return 1.1 * self.full(images)["pool"].to("cpu", torch.float64)


def test_stats_check_reports_the_difference_of_the_two_networks(tmp_path, monkeypatch):
    from specmatch.engine import evaluation
    from specmatch.metrics.inception_full import build_fid_inception, load_full_inception
    from specmatch.metrics.reference import read_reference
    from specmatch.testing import invoke_cli

    torch.manual_seed(0)
    net = build_fid_inception()
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    weights = tmp_path / "random_fid_inception.pth"
    torch.save(net.state_dict(), weights)
    full = load_full_inception(weights, sha256="")
    monkeypatch.setattr(evaluation, "load_feature_network", lambda *a, **k: (ScaledStandIn(full), ""))
    out = tmp_path / "ref.npz"
    args = ("stats", str(SMOKE), "-O", str(out), "--images", "3", "--batch-size", "3", "--features", "0",
            "-o", "data.params.resolution=8", "-o", "data.params.num_images=8", "--check-weights", str(weights))
    refused = invoke_cli(*args)  # the default check: the hash prefix pytorch-fid's file name carries
    assert refused.exit_code != 0 and "6726825d" in refused.output
    result = invoke_cli(*args, "--check-sha256", "")
    assert result.exit_code == 0, result.output
    ref = read_reference(out, feature_dim=2048)
    assert ref.n == 3 and set(ref.streams) == {"inception-spatial"}  # sFID statistics for ADM's mu_s/sigma_s
    fid_between = float(result.output.split("FID between the two networks' features = ")[1].split(" ")[0])
    largest = float(result.output.split("largest relative feature difference = ")[1].split(";")[0])
    mu, sigma = ref.mean / 1.1, ref.cov / 1.21  # the full network's statistics
    assert largest == pytest.approx(0.1, rel=1e-3)
    assert fid_between == pytest.approx(0.01 * (mu @ mu + np.trace(sigma)), rel=1e-3)
