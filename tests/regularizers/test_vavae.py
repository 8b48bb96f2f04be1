"""VA-VAE VF loss: against a naive per-token loop, edge cases, grids, precision, projection."""

import math

import pytest
import torch

from specmatch.regularizers.vavae import VFProjection, vf_loss


def _cos(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(x * x for x in b))
    return dot / (max(na, 1e-8) * max(nb, 1e-8))


def naive_vf(z, f, margin_cos, margin_dist):
    """Loop implementation of method.md §5.2 in Python floats (float64)."""
    B, D, h, w = z.shape
    tokens_z = [[[float(z[b, d, i, j]) for d in range(D)] for i in range(h) for j in range(w)] for b in range(B)]
    tokens_f = [[[float(f[b, d, i, j]) for d in range(D)] for i in range(h) for j in range(w)] for b in range(B)]
    n = h * w
    mcos = 0.0
    mdms = 0.0
    for b in range(B):
        for i in range(n):
            mcos += max(0.0, 1.0 - margin_cos - _cos(tokens_z[b][i], tokens_f[b][i]))
            for j in range(n):
                diff = abs(_cos(tokens_z[b][i], tokens_z[b][j]) - _cos(tokens_f[b][i], tokens_f[b][j]))
                mdms += max(0.0, diff - margin_dist)
    return mcos / (B * n), mdms / (B * n * n)


@pytest.mark.parametrize("margins", [(0.5, 0.25), (0.0, 0.0), (0.2, 0.05)])
def test_matches_naive_loop(margins):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 5, 3, 4, generator=g)
    f = torch.randn(2, 5, 3, 4, generator=g) + 0.5 * z  # partly aligned, so some terms are above the margins
    m_cos, m_dist = margins
    total, parts = vf_loss(z, f, margin_cos=m_cos, margin_dist=m_dist)
    ref_cos, ref_dist = naive_vf(z, f, m_cos, m_dist)
    assert parts["mcos"].item() == pytest.approx(ref_cos, rel=1e-5, abs=1e-7)
    assert parts["mdms"].item() == pytest.approx(ref_dist, rel=1e-5, abs=1e-7)
    assert total.item() == pytest.approx(ref_cos + ref_dist, rel=1e-5, abs=1e-7)
    assert ref_dist > 0 and ref_cos > 0  # the case exercises both terms


def test_identical_features_give_zero():
    z = torch.randn(2, 8, 4, 4)
    total, parts = vf_loss(z, z.clone())
    # cos = 1: relu(1 - 0.5 - 1) = 0; equal distance matrices: relu(0 - 0.25) = 0
    assert parts["mcos"].item() == 0.0
    assert parts["mdms"].item() == 0.0
    assert total.item() == 0.0


def test_scaled_features_are_equivalent():
    """Cosines ignore per-token scale, so a positively rescaled teacher gives the same loss."""
    z = torch.randn(2, 6, 3, 3)
    f = torch.randn(2, 6, 3, 3)
    scale = torch.rand(2, 1, 3, 3) * 5 + 0.1
    a, _ = vf_loss(z, f)
    b, _ = vf_loss(z, f * scale)
    assert a.item() == pytest.approx(b.item(), rel=1e-5)


def test_negated_features():
    z = torch.randn(2, 6, 3, 3)
    _, parts = vf_loss(z, -z)
    # cos = -1 everywhere: relu(1 - 0.5 + 1) = 1.5; the gram matrices of z and -z are equal: mdms = 0
    assert parts["mcos"].item() == pytest.approx(1.5, abs=1e-6)
    assert parts["mdms"].item() == pytest.approx(0.0, abs=1e-7)


def test_margin_hides_small_disagreements():
    """With cos >= 0.5 everywhere, the default cosine margin makes mcos exactly 0."""
    z = torch.randn(1, 16, 4, 4)
    f = z + 0.05 * torch.randn(1, 16, 4, 4)
    _, parts = vf_loss(z, f)
    assert parts["mcos"].item() == 0.0
    _, no_margin = vf_loss(z, f, margin_cos=0.0, margin_dist=0.0)
    assert no_margin["mcos"].item() > 0.0 and no_margin["mdms"].item() > 0.0


@pytest.mark.parametrize("teacher_grid", [(7, 7), (8, 8), (2, 3)])
def test_teacher_grid_is_resampled_to_latent_grid(teacher_grid):
    """A spatially constant teacher map is the same at every resolution, so the loss must not depend on its grid."""
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2, 6, 4, 4, generator=g)
    vector = torch.randn(2, 6, 1, 1, generator=g)
    _, at_latent_grid = vf_loss(z, vector.expand(2, 6, 4, 4))
    _, resampled = vf_loss(z, vector.expand(2, 6, *teacher_grid).contiguous())
    ref_cos, ref_dist = naive_vf(z, vector.expand(2, 6, 4, 4), 0.5, 0.25)
    assert resampled["mcos"].item() == pytest.approx(ref_cos, rel=1e-5)
    assert resampled["mdms"].item() == pytest.approx(ref_dist, rel=1e-5, abs=1e-7)
    assert resampled["mcos"].item() == pytest.approx(at_latent_grid["mcos"].item(), rel=1e-6)


def test_gradient_reaches_latent_not_teacher():
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    f = torch.randn(2, 4, 3, 3, requires_grad=True)
    total, _ = vf_loss(z, f, margin_cos=0.0, margin_dist=0.0)
    total.backward()
    assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    assert f.grad is None


def test_low_precision_inputs_give_float32():
    z = torch.randn(2, 8, 4, 4).bfloat16()
    f = torch.randn(2, 8, 4, 4).bfloat16()
    total, parts = vf_loss(z, f)
    assert total.dtype == torch.float32 and parts["mcos"].dtype == torch.float32
    ref, _ = vf_loss(z.float(), f.float())
    assert total.item() == pytest.approx(ref.item(), rel=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto, _ = vf_loss(z.float(), f.float())
    assert auto.dtype == torch.float32 and auto.item() == pytest.approx(ref.item(), rel=1e-6)


def test_shape_errors():
    with pytest.raises(ValueError, match="feature_dim"):
        vf_loss(torch.randn(1, 4, 2, 2), torch.randn(1, 5, 2, 2))
    with pytest.raises(ValueError):
        vf_loss(torch.randn(1, 4, 4), torch.randn(1, 4, 4))


def test_projection_is_bias_free_1x1():
    proj = VFProjection(3, 7)
    assert proj.bias is None
    assert proj.weight.shape == (7, 3, 1, 1)
    z = torch.randn(2, 3, 5, 4)
    expected = torch.einsum("dc,bchw->bdhw", proj.weight[:, :, 0, 0], z)
    torch.testing.assert_close(proj(z), expected, rtol=1e-5, atol=1e-6)
    assert proj(torch.zeros(1, 3, 2, 2)).abs().max().item() == 0.0  # no bias
