"""The engine's side of denoiser training: label dropout and the scheduled denoiser regularizer terms."""

from __future__ import annotations

import attrs
import torch
from torch import nn

from specmatch.core.schema import LossTermConfig
from specmatch.engine.denoiser_loss import TermSlot, TrainableDenoiser, denoiser_loss, drop_labels


def test_label_dropout_rate_null_index_and_seed():
    y = torch.randint(0, 10, (20000,), generator=torch.Generator().manual_seed(1))
    dropped = drop_labels(y, 0.1, 10, torch.Generator().manual_seed(2))
    replaced = dropped != y
    # Binomial(20000, 0.1): the rate's std is 0.0021; allow 5 standard deviations.
    assert abs(replaced.float().mean().item() - 0.1) < 0.0106
    assert torch.all(dropped[replaced] == 10)  # replaced by the null class, nothing else
    assert torch.equal(dropped, drop_labels(y, 0.1, 10, torch.Generator().manual_seed(2)))  # seeded
    assert not torch.equal(dropped, drop_labels(y, 0.1, 10, torch.Generator().manual_seed(3)))
    assert torch.equal(drop_labels(y, 0.0, 10, torch.Generator()), y)


class _Linear(nn.Module):
    """A denoiser with one tap: the hidden map is the input times a weight."""

    tap_widths = (3,)

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(2.0))

    def forward(self, x, t, y=None, *, return_hidden_at=None):
        out = self.w * x
        return out if return_hidden_at is None else (out, out * 10)


class _HiddenMean(nn.Module):
    def loss(self, inputs):
        return inputs.hidden.mean(), {"t_mean": inputs.t.mean()}


class _Objective:
    """loss = mean(model(x0, t=0.5)): enough to see what the terms receive."""

    def loss(self, model_fn, x0, *, generator, y=None):
        pred = model_fn(x0, torch.full((x0.shape[0],), 0.5))
        return pred.mean(), {"objective": pred.mean()}


def test_terms_follow_their_schedule_and_read_the_tap():
    x0 = torch.ones(2, 3, 4, 4)
    cfg = LossTermConfig(name="m", weight=0.5, start_step=10, warmup_steps=10)
    trainable = TrainableDenoiser(_Linear(), [_HiddenMean()], [TermSlot(name="m", config=cfg, needs=frozenset({"hidden"}))],
                                  tap=1)
    before, parts = denoiser_loss(trainable, trainable, _Objective(), x0, None, step=5, generator=torch.Generator())
    assert "m" not in parts and before.item() == 2.0  # off before start_step
    half, parts = denoiser_loss(trainable, trainable, _Objective(), x0, None, step=15, generator=torch.Generator())
    # objective 2 + ramp weight 0.5 * 6/10 (step 15 is the 6th step of the ramp from 10) * hidden mean 20
    assert abs(half.item() - (2.0 + 0.3 * 20.0)) < 1e-5
    assert parts["m"].item() == 20.0 and parts["m/t_mean"].item() == 0.5
    cfg_end = attrs.evolve(cfg, end_step=12)
    trainable.slots = [TermSlot(name="m", config=cfg_end, needs=frozenset({"hidden"}))]
    after, _ = denoiser_loss(trainable, trainable, _Objective(), x0, None, step=15, generator=torch.Generator())
    assert after.item() == 2.0  # off from end_step


def test_a_class_conditional_run_on_unlabelled_data_stops_with_a_clean_error(tmp_path, monkeypatch):
    """A dataset whose facts do not say whether it is labelled: the denoiser stage finds out and stops."""
    from pathlib import Path

    import specmatch.plugins.datasets as datasets
    from specmatch import Facts
    from specmatch.testing import invoke_cli

    monkeypatch.setattr(datasets, "demo_facts", lambda params: Facts(resolution=params.resolution))

    smoke = Path(__file__).resolve().parents[2] / "recipes" / "smoke.toml"
    result = invoke_cli("run", str(smoke), "--output-dir", str(tmp_path / "run"),
                        "-o", "train.denoiser.class_conditional=true", "-o", "train.autoencoder.steps=1",
                        "-o", "latent_stats.images=8", "-o", "evaluation.frechet=false")
    assert result.exit_code == 1, result.output
    assert "train.denoiser.class_conditional" in result.output and "no class labels" in result.output
    assert "Traceback" not in result.output


def test_validate_refuses_class_conditional_on_a_dataset_whose_facts_say_unlabelled():
    from pathlib import Path

    from specmatch.testing import invoke_cli

    smoke = Path(__file__).resolve().parents[2] / "recipes" / "smoke.toml"
    result = invoke_cli("validate", str(smoke), "-o", "train.denoiser.class_conditional=true")
    assert result.exit_code != 0, result.output
    assert "train.denoiser.class_conditional" in result.output and "has no class labels" in result.output
    assert "Traceback" not in result.output
    # a labelled dataset (Fashion-MNIST's facts say so) passes this check
    ok = invoke_cli("validate", str(smoke), "--no-file-checks", "-o", "data.name=fashion-mnist",
                    "-o", "data.params={ resolution = 16 }", "-o", "train.denoiser.class_conditional=true")
    assert "has no class labels" not in ok.output, ok.output
