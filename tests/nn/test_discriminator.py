"""PatchGAN, hinge losses and the adaptive weight."""

from __future__ import annotations

import pytest
import torch

from specmatch.core.errors import SpecmatchError
from specmatch.nn.adaptive import adaptive_weight
from specmatch.nn.discriminator import PatchGAN, hinge_d_loss, init_patchgan_weights


def test_logits_grid_at_256_is_30x30():
    with torch.device("meta"):
        logits = PatchGAN()(torch.empty(2, 3, 256, 256))
    assert tuple(logits.shape) == (2, 1, 30, 30)


def test_logits_grid_small_real_input():
    # Side per conv (k4, p1): 32 -s2-> 16 -s2-> 8 -s2-> 4 -s1-> 3 -s1-> 2.
    logits = PatchGAN()(torch.randn(2, 3, 32, 32))
    assert tuple(logits.shape) == (2, 1, 2, 2)


def test_parameter_count():
    # conv 3->64 (+bias) | 64->128, 128->256, 256->512 (no bias) + BN affine | 512->1 (+bias)
    expected = (3 * 64 * 16 + 64) + (64 * 128 * 16 + 2 * 128) + (128 * 256 * 16 + 2 * 256) \
        + (256 * 512 * 16 + 2 * 512) + (512 * 16 + 1)
    count = sum(p.numel() for p in PatchGAN().parameters())
    assert count == expected == 2_765_633


def test_structure_and_channel_cap():
    model = PatchGAN(base_channels=8, n_layers=5)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16, 32, 64, 64, 64, 1]  # doubling capped at 8x
    assert [c.stride[0] for c in convs] == [2, 2, 2, 2, 2, 1, 1]
    assert all(c.kernel_size == (4, 4) and c.padding == (1, 1) for c in convs)
    assert [c.bias is not None for c in convs] == [True, False, False, False, False, False, True]
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == 5


def test_init_statistics():
    torch.manual_seed(0)
    model = PatchGAN()
    big_conv = model.layers[8]  # 256 -> 512, 2.1M weights
    assert big_conv.weight.shape == (512, 256, 4, 4)
    assert big_conv.weight.std().item() == pytest.approx(0.2, rel=0.01)
    assert abs(big_conv.weight.mean().item()) < 1e-3
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    weights = torch.cat([m.weight.detach() for m in norms])  # 896 values ~ N(1, 0.02)
    assert weights.mean().item() == pytest.approx(1.0, abs=0.003)
    assert weights.std().item() == pytest.approx(0.02, rel=0.1)
    assert all(torch.equal(m.bias, torch.zeros_like(m.bias)) for m in norms)


def test_init_conv_std_parameter():
    torch.manual_seed(0)
    model = PatchGAN(conv_std=0.02)
    assert model.layers[8].weight.std().item() == pytest.approx(0.02, rel=0.01)
    init_patchgan_weights(model, conv_std=0.5)
    assert model.layers[8].weight.std().item() == pytest.approx(0.5, rel=0.01)


def test_norm_none_and_bad_norm():
    model = PatchGAN(norm="none")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert all(m.bias is not None for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    with pytest.raises(SpecmatchError, match="'group'"):
        PatchGAN(norm="group")


def test_hinge_loss_on_hand_made_logits():
    real = torch.tensor([2.0, 0.5, -1.0])  # relu(1 - r) = 0, 0.5, 2   -> mean 5/6
    fake = torch.tensor([-2.0, 0.0, 1.5])  # relu(1 + f) = 0, 1, 2.5   -> mean 7/6
    assert hinge_d_loss(real, fake).item() == pytest.approx(5 / 6 + 7 / 6)


def _linear_losses(other_direction):
    # loss_main = 3 * <W, a> and loss_other = <W, b>: gradients at W are 3a and b.
    layer = torch.nn.Linear(2, 1, bias=False)
    a = torch.tensor([[3.0, 4.0]])  # |3a| = 15
    b = torch.tensor([other_direction])
    return 3 * layer(a).sum(), layer(b).sum(), layer.weight


def test_adaptive_weight_ratio():
    main, other, weight = _linear_losses([2.0, 0.0])  # |b| = 2
    assert adaptive_weight(main, other, weight).item() == pytest.approx(7.5)
    assert adaptive_weight(main, other, weight, eps=1e-4, eps_mode="add").item() == pytest.approx(15 / (2 + 1e-4))
    main.backward()  # the graph was retained
    assert weight.grad is not None


def test_adaptive_weight_is_detached():
    main, other, weight = _linear_losses([2.0, 0.0])
    value = adaptive_weight(main, other, weight)
    assert not value.requires_grad and value.ndim == 0


def test_adaptive_weight_eps_modes_and_clamp():
    main, other, weight = _linear_losses([1e-9, 0.0])
    assert adaptive_weight(main, other, weight, max_value=1e12).item() == pytest.approx(15 / 1e-8, rel=1e-5)
    assert adaptive_weight(main, other, weight).item() == pytest.approx(1e4)  # clamped
    assert adaptive_weight(main, other, weight, eps=1e-4, eps_mode="add", max_value=1e8).item() == \
        pytest.approx(15 / (1e-4 + 1e-9), rel=1e-5)
    with pytest.raises(ValueError, match="eps_mode"):
        adaptive_weight(main, other, weight, eps_mode="min")


def test_adaptive_weight_scale_applies_after_clamp():
    main, other, weight = _linear_losses([1.0, 0.0])  # ratio 15
    assert adaptive_weight(main, other, weight, max_value=10.0, scale=0.5).item() == pytest.approx(5.0)
    assert adaptive_weight(main, other, weight, scale=0.1).item() == pytest.approx(1.5)
