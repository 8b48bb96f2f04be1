"""Tests for the DiT denoiser: shapes, adaLN-Zero init, conditioning, label dropout, hidden states, config errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from specmatch.diffusion.dit import DIT_PRESETS, DiT, build_dit, sincos_2d_position_embedding


def micro(**overrides) -> DiT:
    settings = dict(input_size=8, in_channels=4, patch_size=2)
    settings.update(overrides)
    return build_dit("dit-micro", **settings)


def train_a_little(model: DiT, steps: int, *, seed: int = 0, labels: bool = False) -> None:
    """A few AdamW steps regressing random targets, enough to move every parameter off its init."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        x = torch.randn(8, model.in_channels, model.input_size, model.input_size, generator=gen)
        t = torch.rand(8, generator=gen)
        y = torch.randint(0, model.num_classes, (8,), generator=gen) if labels else None
        target = torch.randn(x.shape, generator=gen) + (y.float().view(-1, 1, 1, 1) if labels else 0.0)
        loss = (model(x, t, y) - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.parametrize(
    "input_size, in_channels, patch_size",
    [(8, 4, 1), (8, 4, 2), (16, 16, 2), (16, 3, 4), (8, 1, 8)],
)
def test_output_shape_and_tokens(input_size, in_channels, patch_size):
    model = micro(input_size=input_size, in_channels=in_channels, patch_size=patch_size)
    x = torch.randn(3, in_channels, input_size, input_size)
    out = model(x, torch.rand(3))
    assert out.shape == x.shape
    assert model.num_tokens == (input_size // patch_size) ** 2
    assert model.hidden_size == 64 and model.depth == 2


def test_learn_sigma_still_returns_velocity_channels():
    model = micro(learn_sigma=True)
    assert model.final_layer.linear.out_features == 2 * 4 * 2 * 2
    train_a_little(model, 2)
    assert model(torch.randn(2, 4, 8, 8), torch.rand(2)).shape == (2, 4, 8, 8)


def test_scalar_time_is_broadcast():
    model = micro()
    train_a_little(model, 3)
    model.eval()
    x = torch.randn(3, 4, 8, 8)
    torch.testing.assert_close(model(x, torch.tensor(0.3)), model(x, torch.full((3,), 0.3)))


def test_adaln_zero_init_outputs_exact_zero():
    model = micro(num_classes=5)
    x = torch.randn(4, 4, 8, 8)
    out = model(x, torch.rand(4), torch.tensor([0, 1, 2, 5]))
    assert torch.equal(out, torch.zeros_like(x))
    # Every block starts as the identity: the hidden state after block 2 is the embedded input.
    _, hidden = model(x, torch.rand(4), return_hidden_at=2)
    torch.testing.assert_close(hidden, model.x_embedder(x) + model.pos_embed)


def test_class_conditioning_changes_output_after_training():
    torch.manual_seed(0)
    model = micro(num_classes=3)
    x = torch.randn(2, 4, 8, 8)
    t = torch.full((2,), 0.5)
    model.eval()
    before = model(x, t, torch.tensor([0, 0])) - model(x, t, torch.tensor([1, 1]))
    assert torch.equal(before, torch.zeros_like(before))  # zero output at init, whatever the label
    train_a_little(model, 5, labels=True)
    model.eval()
    after = model(x, t, torch.tensor([0, 0])) - model(x, t, torch.tensor([1, 1]))
    assert after.abs().max() > 1e-3


def test_the_network_never_drops_labels_and_none_means_the_null_class():
    torch.manual_seed(0)
    model = micro(num_classes=3)
    train_a_little(model, 5, labels=True)
    with torch.no_grad():
        model.y_embedder.weight.normal_()  # make every label's embedding distinct
    x, t, y = torch.randn(2, 4, 8, 8), torch.rand(2), torch.tensor([0, 2])
    train_out = model.train()(x, t, y)
    eval_out = model.eval()(x, t, y)
    torch.testing.assert_close(train_out, eval_out)  # label dropout is the engine's, not the network's
    torch.testing.assert_close(model(x, t), model(x, t, torch.tensor([3, 3])))  # y=None is the null class
    assert (model(x, t) - eval_out).abs().max() > 1e-4


def test_unconditional_model_refuses_labels():
    model = micro(num_classes=0)
    assert model.y_embedder is None and model.null_class is None
    with pytest.raises(ValueError, match="unconditional"):
        model(torch.randn(2, 4, 8, 8), torch.rand(2), torch.tensor([0, 1]))


def test_tap_widths_are_the_token_width_of_every_block():
    model = micro(depth=3)
    assert model.tap_widths == (model.hidden_size,) * 3
    _, hidden = model(torch.randn(2, 4, 8, 8), torch.rand(2), return_hidden_at=3)
    assert hidden.shape[-1] == model.tap_widths[2]


def test_return_hidden_at_matches_block_output():
    torch.manual_seed(0)
    model = micro(depth=3)
    train_a_little(model, 3)
    model.eval()
    captured = {}
    model.blocks[1].register_forward_hook(lambda module, args, output: captured.setdefault("h", output))
    x, t = torch.randn(2, 4, 8, 8), torch.rand(2)
    out, hidden = model(x, t, return_hidden_at=2)
    assert hidden.shape == (2, model.num_tokens, model.hidden_size)
    torch.testing.assert_close(hidden, captured["h"])
    torch.testing.assert_close(out, model(x, t))


def numpy_mae_pos_embed(dim: int, grid: int) -> np.ndarray:
    """The MAE / DiT reference construction, written independently with numpy."""

    def one_d(d, pos):
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    gh = np.arange(grid, dtype=np.float32)
    gw = np.arange(grid, dtype=np.float32)
    mesh = np.stack(np.meshgrid(gw, gh), axis=0).reshape(2, 1, grid, grid)
    return np.concatenate([one_d(dim // 2, mesh[0]), one_d(dim // 2, mesh[1])], axis=1)


@pytest.mark.parametrize("dim, grid", [(64, 4), (192, 8), (32, 16)])
def test_position_embedding_matches_numpy_reference(dim, grid):
    expected = torch.from_numpy(numpy_mae_pos_embed(dim, grid)).float()
    torch.testing.assert_close(sincos_2d_position_embedding(dim, grid), expected, rtol=0, atol=1e-6)


def test_model_position_embedding_is_a_fixed_buffer():
    model = micro(patch_size=1)
    expected = torch.from_numpy(numpy_mae_pos_embed(64, 8)).float().unsqueeze(0)
    torch.testing.assert_close(model.pos_embed, expected, rtol=0, atol=1e-6)
    assert "pos_embed" in dict(model.named_buffers())
    assert all(name != "pos_embed" for name, _ in model.named_parameters())


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"input_size": 9, "patch_size": 2}, "divisible by patch_size"),
        ({"hidden_size": 66, "num_heads": 4}, "divisible by num_heads"),
        ({"hidden_size": 66, "num_heads": 3}, "divisible by 4"),
        ({"num_classes": -1}, "num_classes"),
        ({"depth": 0}, "depth"),
    ],
)
def test_bad_config_raises(overrides, message):
    with pytest.raises(ValueError, match=message):
        micro(**overrides)


def test_bad_inputs_raise():
    model = micro()
    with pytest.raises(ValueError, match="return_hidden_at"):
        model(torch.randn(1, 4, 8, 8), torch.rand(1), return_hidden_at=3)
    with pytest.raises(ValueError, match="unconditional"):
        model(torch.randn(1, 4, 8, 8), torch.rand(1), torch.tensor([0]))
    with pytest.raises(ValueError, match=r"x must have shape"):
        model(torch.randn(1, 4, 16, 16), torch.rand(1))


def test_presets_and_builder():
    assert {"dit-micro", "dit-tiny", "dit-s", "dit-b"} <= set(DIT_PRESETS)
    model = build_dit("dit-tiny", input_size=8, in_channels=4, patch_size=1, depth=2)
    assert (model.hidden_size, model.depth, model.num_heads) == (192, 2, 3)
    with pytest.raises(ValueError, match="unknown DiT preset"):
        build_dit("dit-huge", input_size=8, in_channels=4)
    with pytest.raises(ValueError, match="input_size"):
        build_dit("dit-micro", in_channels=4)
