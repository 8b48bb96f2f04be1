"""REPA building blocks: projection loss, token targets (grid order, resampling, DoG), projectors, hidden tap."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from specmatch.alignment.dog import dog_filter
from specmatch.alignment.repa import (
    RepaParams,
    RepresentationAlignment,
    TokenProjector,
    alignment_targets,
    negative_cosine,
    resample_grid,
)
from specmatch.core.components import DenoiserRegularizerInputs
from specmatch.diffusion.dit import build_dit


def test_negative_cosine_matches_numpy():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 5, 7, generator=gen), torch.randn(3, 5, 7, generator=gen)
    an, bn = a.numpy().astype(np.float64), b.numpy().astype(np.float64)
    cos = (an * bn).sum(-1) / (np.linalg.norm(an, axis=-1) * np.linalg.norm(bn, axis=-1))
    assert negative_cosine(a, b).item() == pytest.approx(-cos.mean(), abs=1e-6)
    assert negative_cosine(a, a).item() == pytest.approx(-1.0, abs=1e-6)
    with pytest.raises(ValueError, match="differ"):
        negative_cosine(a, b[:, :4])


def test_targets_are_row_major_tokens_on_the_same_grid():
    features = torch.randn(2, 6, 3, 4)
    tokens = alignment_targets(features, (3, 4))
    assert tokens.shape == (2, 12, 6)
    for r in range(3):
        for c in range(4):
            assert torch.equal(tokens[:, r * 4 + c], features[:, :, r, c])


def test_a_larger_teacher_grid_is_area_averaged_and_a_smaller_one_interpolated():
    features = torch.randn(1, 2, 8, 8)
    shrunk = resample_grid(features, (4, 4))
    manual = features.reshape(1, 2, 4, 2, 4, 2).mean(dim=(3, 5))  # mean of each 2x2 block
    assert torch.allclose(shrunk, manual, atol=1e-6)
    constant = torch.full((1, 3, 2, 2), 2.5)
    assert torch.allclose(resample_grid(constant, (5, 5)), torch.full((1, 3, 5, 5), 2.5))


def _gaussian_response(sigma: float, size: int, omega: float) -> float:
    """Closed-form response of a sampled Gaussian (taps -r..r, normalised to sum 1) to cos(omega x)."""
    taps = np.arange(size) - size // 2
    weights = np.exp(-taps**2 / (2 * sigma**2))
    return float(np.sum(weights * np.cos(omega * taps)) / np.sum(weights))


def test_dog_target_filters_on_the_teacher_grid_before_resampling():
    """Separable cosines cos(a r) cos(b c) with a, b multiples of pi/(n-1) are mirror-symmetric about both
    borders, so reflect padding continues them exactly and the DoG scales each by its gain
    g_low(a) g_low(b) - g_high(a) g_high(b). The 4x4 targets are then 2x2 block means of the filtered map."""
    n = 8
    dog = {"sigma_low": 0.6, "kernel_low": 3, "sigma_high": 2.0, "kernel_high": 5}
    frequencies = [(1, 2), (3, 0), (2, 5)]  # (m_row, m_col) per channel: omega = pi m / (n - 1)
    idx = np.arange(n)
    maps, gains = [], []
    for m_row, m_col in frequencies:
        a, b = np.pi * m_row / (n - 1), np.pi * m_col / (n - 1)
        maps.append(np.outer(np.cos(a * idx), np.cos(b * idx)))
        gains.append(_gaussian_response(0.6, 3, a) * _gaussian_response(0.6, 3, b)
                     - _gaussian_response(2.0, 5, a) * _gaussian_response(2.0, 5, b))
    features = np.stack(maps)[None]  # (1, 3, 8, 8)
    filtered = features * np.array(gains)[None, :, None, None]
    expected = filtered.reshape(1, 3, 4, 2, 4, 2).mean(axis=(3, 5)).reshape(1, 3, 16).transpose(0, 2, 1)
    got = alignment_targets(torch.from_numpy(features), (4, 4), target_filter="dog", dog=dog)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-10)
    # resampling first and filtering on the 4x4 grid would give other targets
    wrong = dog_filter(resample_grid(torch.from_numpy(features), (4, 4)), **dog).flatten(2).transpose(1, 2)
    assert np.abs(wrong.numpy() - expected).max() > 0.05
    # a band-pass: a spatially constant teacher map gives all-zero targets
    flat = alignment_targets(torch.ones(1, 3, 8, 8) * 4, (8, 8), target_filter="dog", dog=dog)
    assert flat.abs().max() < 1e-5
    with pytest.raises(ValueError, match="target_filter"):
        alignment_targets(features, (4, 4), target_filter="wavelet")


def test_projectors():
    tokens = torch.randn(2, 16, 8)
    mlp = TokenProjector("mlp", 8, 5, width=32)
    assert mlp(tokens).shape == (2, 16, 5)
    assert [m.out_features for m in mlp.net if isinstance(m, torch.nn.Linear)] == [32, 32, 5]
    conv = TokenProjector("conv", 8, 5)
    grid = tokens.transpose(1, 2).reshape(2, 8, 4, 4)
    manual = torch.nn.functional.conv2d(grid, conv.net.weight, conv.net.bias, padding=1)
    assert torch.allclose(conv(tokens), manual.flatten(2).transpose(1, 2), atol=1e-6)
    with pytest.raises(ValueError, match="grid"):
        conv(torch.randn(1, 12, 8))
    rect = torch.randn(2, 8, 3, 5)  # a non-square map is projected on its own grid
    manual = torch.nn.functional.conv2d(rect, conv.net.weight, conv.net.bias, padding=1)
    assert torch.allclose(conv(rect.flatten(2).transpose(1, 2), (3, 5)), manual.flatten(2).transpose(1, 2),
                          atol=1e-6)


def test_the_alignment_loss_trains_only_blocks_up_to_depth():
    torch.manual_seed(0)
    dit = build_dit("dit-micro", input_size=8, in_channels=4, patch_size=2)  # 2 blocks, 16 tokens
    term = RepresentationAlignment(RepaParams(depth=1, projector_width=16), dit.tap_widths[0], 6)
    x, t = torch.randn(2, 4, 8, 8), torch.rand(2)
    velocity, hidden = dit(x, t, return_hidden_at=1)
    assert torch.equal(velocity, dit(x, t))  # the prediction is the plain denoiser's
    loss = term.loss(DenoiserRegularizerInputs(x0=x, t=t, step=0, hidden=hidden, features=torch.randn(2, 6, 4, 4)))
    loss.backward()
    grad = {name: p.grad for name, p in dit.named_parameters()}
    assert grad["x_embedder.proj.weight"].abs().sum() > 0
    assert any(g is not None and g.abs().sum() > 0 for n, g in grad.items() if n.startswith("blocks.0."))
    # block 2 and the output layer come after the tap: the alignment loss cannot reach them
    assert all(g is None or g.abs().sum() == 0 for n, g in grad.items()
               if n.startswith(("blocks.1.", "final_layer.")))
    assert all(p.grad is not None for p in term.parameters())


def test_a_feature_map_tap_aligns_like_the_same_tokens():
    """A U-Net offers maps (B, D, gh, gw); they are read as row-major tokens, so both forms give one loss."""
    torch.manual_seed(0)
    term = RepresentationAlignment(RepaParams(projector="conv"), 5, 7)
    hidden_map, features = torch.randn(2, 5, 4, 4), torch.randn(2, 7, 8, 8)
    tokens = hidden_map.flatten(2).transpose(1, 2)
    as_map = term.loss(DenoiserRegularizerInputs(x0=hidden_map, t=None, step=0, hidden=hidden_map,
                                                 features=features))
    as_tokens = term.loss(DenoiserRegularizerInputs(x0=hidden_map, t=None, step=0, hidden=tokens,
                                                    features=features))
    torch.testing.assert_close(as_map, as_tokens)
