"""The denoiser contract, family by family: shapes, labels and the null class, taps, initialisation, gradients."""

from __future__ import annotations

import pytest
import torch


@pytest.mark.parametrize("channels, side", [(4, 8), (16, 8), (32, 4), (3, 16)])
def test_output_shape_equals_input_shape_conditional_and_not(build, family, channels, side):
    for num_classes in (0, 5):
        model = build(family, channels, side, num_classes=num_classes).eval()
        x = torch.randn(3, channels, side, side)
        y = torch.tensor([0, 4, 5]) if num_classes else None
        out = model(x, torch.rand(3), y)
        assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()


def test_null_class_and_label_rows(build, family):
    model = build(family, num_classes=7)
    assert model.null_class == 7
    tables = [m for m in model.modules() if isinstance(m, torch.nn.Embedding)]
    assert [t.num_embeddings for t in tables] == [8]  # num_classes + 1, the last row the null class
    assert build(family, num_classes=0).null_class is None
    assert not any(isinstance(m, torch.nn.Embedding) for m in build(family, num_classes=0).modules())


def test_no_labels_means_the_null_class(build, family, randomize):
    model = randomize(build(family, num_classes=3)).eval()
    x, t = torch.randn(2, 4, 8, 8), torch.rand(2)
    torch.testing.assert_close(model(x, t), model(x, t, torch.tensor([3, 3])))
    assert (model(x, t, torch.tensor([0, 1])) - model(x, t)).abs().max() > 1e-4  # labels do change it


def test_network_never_drops_labels(build, family, randomize):
    """Train mode gives the same output as eval mode: label dropout is the engine's, not the network's."""
    model = randomize(build(family, num_classes=3))
    x, t, y = torch.randn(4, 4, 8, 8), torch.rand(4), torch.tensor([0, 1, 2, 0])
    outs = [model.train()(x, t, y) for _ in range(3)] + [model.eval()(x, t, y)]
    for out in outs[1:]:
        torch.testing.assert_close(out, outs[0])


def test_unconditional_network_refuses_labels(build, family):
    with pytest.raises(ValueError, match="unconditional"):
        build(family)(torch.randn(1, 4, 8, 8), torch.rand(1), torch.tensor([0]))


def test_scalar_time_is_broadcast_and_time_matters(build, family, randomize):
    model = randomize(build(family)).eval()
    x = torch.randn(3, 4, 8, 8)
    torch.testing.assert_close(model(x, torch.tensor(0.3)), model(x, torch.full((3,), 0.3)))
    # t in [0, 1] must reach the network at a scale it resolves: 0.3 and 0.31 differ
    assert (model(x, torch.full((3,), 0.3)) - model(x, torch.full((3,), 0.31))).abs().max() > 1e-5


def test_hidden_taps_have_the_declared_widths(build, family, randomize):
    model = randomize(build(family, num_classes=3)).eval()
    x, t, y = torch.randn(2, 4, 8, 8), torch.rand(2), torch.tensor([0, 2])
    out = model(x, t, y)
    assert model.depth == len(model.tap_widths) >= 2
    grids = set()
    for k, width in enumerate(model.tap_widths, start=1):
        same, hidden = model(x, t, y, return_hidden_at=k)
        torch.testing.assert_close(same, out)
        if hidden.dim() == 3:  # tokens of a square grid, row-major
            assert hidden.shape[::2] == (2, width)
            side = round(hidden.shape[1] ** 0.5)
            assert side * side == hidden.shape[1]
        else:
            assert hidden.dim() == 4 and hidden.shape[:2] == (2, width)
        grids.add(tuple(hidden.shape[1:]))
    assert len(grids) > 1 or family != "adm-unet"  # the U-Net's taps span several resolutions
    for bad in (0, model.depth + 1):
        with pytest.raises(ValueError, match="return_hidden_at"):
            model(x, t, y, return_hidden_at=bad)


def test_zero_output_at_init(build, family):
    """SiT, LightningDiT (adaLN-Zero) and ADM (zero_module) start with an exactly zero output."""
    if family == "uvit":
        pytest.skip("U-ViT has no zero-initialised output (see test_uvit.py for its initialisation)")
    model = build(family, num_classes=3)
    x = torch.randn(2, 4, 8, 8)
    out = model(x, torch.rand(2), torch.tensor([0, 3]))
    assert torch.equal(out, torch.zeros_like(x))


def test_a_gradient_reaches_every_parameter(build, family, randomize):
    model = randomize(build(family, num_classes=3)).train()
    x = torch.randn(3, 4, 8, 8)
    out = model(x, torch.rand(3), torch.tensor([0, 2, 3]))
    (out * torch.randn_like(out)).sum().backward()
    dead = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert dead == []


def test_state_dict_round_trip_rebuilds_the_same_function(build, family, randomize):
    model = randomize(build(family, num_classes=3)).eval()
    copy = build(family, num_classes=3).eval()
    copy.load_state_dict(model.state_dict())
    x, t, y = torch.randn(2, 4, 8, 8), torch.rand(2), torch.tensor([1, 3])
    torch.testing.assert_close(copy(x, t, y), model(x, t, y))


def test_bad_input_shape_is_refused(build, family):
    model = build(family)
    with pytest.raises(ValueError, match="x must have shape"):
        model(torch.randn(1, 3, 8, 8), torch.rand(1))


@pytest.mark.slow
def test_traces_as_one_graph_for_torch_compile(build, family, randomize):
    """``run.compile`` needs no graph breaks: dynamo captures forward (and a tap) whole, same result."""
    model = randomize(build(family, num_classes=3)).eval()
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    x, t, y = torch.randn(2, 4, 8, 8), torch.rand(2), torch.tensor([0, 3])
    torch.testing.assert_close(compiled(x, t, y), model(x, t, y))
    _, hidden = compiled(x, t, y, return_hidden_at=2)
    torch.testing.assert_close(hidden, model(x, t, y, return_hidden_at=2)[1])
