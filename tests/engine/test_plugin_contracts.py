"""Plugin mistakes that only show when the engine builds or calls a component: each fails at once with a
message naming the component and its plugin (docs/plugins.md § Mistakes specmatch catches)."""

from __future__ import annotations


import pytest
import torch
from torch import nn

from specmatch.core.errors import SpecmatchError
from specmatch.core.schema import RegularizerConfig
from specmatch.core.specs import BuildContext, DenoiserSpec, Provider
from specmatch.engine.autoencoder_loss import AutoencoderObjective, RegularizerSlot, to_floats
from specmatch.engine.contracts import ComponentContractError
from specmatch.nn.autoencoder import build_sdvae
from specmatch.testing import MINIMAL_RECIPE, invoke_cli, write_recipe

PROVIDER = Provider(distribution="specmatch-extras", version="0.1.0", plugin="specmatch-extras:extras")


# -- denoiser output ------------------------------------------------------------------------------------

class HalfResolution(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, stride=2, padding=1)

    def forward(self, x, t, y=None):
        return self.conv(x)


class OneChannel(nn.Module):  # (B, 1, h, w) would broadcast silently against the target
    def forward(self, x, t, y=None):
        return x[:, :1]


class Hidden(nn.Module):
    def forward(self, x, t, y=None, return_hidden_at=None):
        return (x, x) if return_hidden_at is None else (x, x.flatten(2).transpose(1, 2))


class Fine(nn.Module):
    def forward(self, x, t, y=None, return_hidden_at=None):
        return (x * 2, x.flatten(2).transpose(1, 2)) if return_hidden_at is not None else x * 2


def built_denoiser(module_cls):
    from specmatch.core.recipe import ResolvedComponent
    from specmatch.engine.build import build

    spec = DenoiserSpec(name="unet-latent", factory=lambda params, ctx: module_cls())
    spec = __import__("attrs").evolve(spec, provider=PROVIDER)
    comp = ResolvedComponent(path="denoiser", kind="denoiser", config=None, spec=spec, params=None)
    return build(comp, BuildContext())


X = torch.zeros(2, 4, 8, 8)
T = torch.rand(2)


@pytest.mark.parametrize("module_cls,got", [(HalfResolution, "(2, 4, 4, 4)"), (OneChannel, "(2, 1, 8, 8)")])
def test_denoiser_output_of_the_wrong_shape_names_the_denoiser_and_both_shapes(module_cls, got):
    model = built_denoiser(module_cls)
    with pytest.raises(ComponentContractError) as info:
        model(X, T)
    assert str(info.value) == ("denoiser 'unet-latent' (from specmatch-extras 0.1.0 [specmatch-extras:extras]): its "
                               f"prediction must have the shape of its input x_t; expected (2, 4, 8, 8), got {got}")


def test_a_denoiser_returning_a_tuple_without_being_asked_is_named():
    model = built_denoiser(Hidden)
    with pytest.raises(ComponentContractError) as info:
        model(X, T)
    assert "denoiser 'unet-latent' (from specmatch-extras" in str(info.value)
    assert "returned a tuple of 2; it must return one tensor, the prediction" in str(info.value)


def test_a_correct_denoiser_passes_with_and_without_hidden_states():
    model = built_denoiser(Fine)
    assert torch.equal(model(X, T), X * 2)
    pred, tokens = model(X, T, return_hidden_at=1)
    assert pred.shape == X.shape and tokens.shape == (2, 64, 4)


def test_an_ema_copy_of_the_denoiser_keeps_the_check():
    copy = __import__("copy").deepcopy(built_denoiser(HalfResolution))
    with pytest.raises(ComponentContractError):
        copy(X, T)


# -- regularizer outputs --------------------------------------------------------------------------------

class Returns(nn.Module):
    def __init__(self, make):
        super().__init__()
        self.make = make

    def loss(self, inputs):
        return self.make(inputs.z)


class BadTransform(nn.Module):
    def transform_pair(self, z, target, ctx):
        return z  # forgot the target


class PureTransform(nn.Module):
    """A pair transform that logs its noise level through ``logs()``, without a loss term."""

    def __init__(self):
        super().__init__()
        self.level = 0.0

    def transform_pair(self, z, target, ctx):
        self.level = 0.25
        return z + self.level, target

    def logs(self):
        return {"level": self.level}


def objective(reg, *, transforms=False, weight=1.0, start_step=0):
    torch.manual_seed(0)
    cfg = RegularizerConfig(name="latent-tv", weight=weight, start_step=start_step)
    slot = RegularizerSlot(name="latent-tv", config=cfg, needs=frozenset(), transforms_pair=transforms, index=0,
                           provider=PROVIDER)
    return AutoencoderObjective(build_sdvae("micro-f2d4"), [reg], [slot])


def step(obj, step=0):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(7)) * 2 - 1
    return obj(x, step=step, cpu_generator=g, device_generator=g)


@pytest.mark.parametrize("make,expected", [
    (lambda z: z.abs().mean(dim=(1, 2, 3)), "loss() must return a scalar tensor (reduce it, e.g. with .mean()); "
                                            "got shape (2,)"),
    (lambda z: z.abs(), "got shape (2, 4, 4, 4)"),
    (lambda z: 1.5, "loss() must return a scalar tensor (or (scalar, logs)); got float"),
])
def test_a_non_scalar_regularizer_loss_names_the_regularizer(make, expected):
    with pytest.raises(ComponentContractError) as info:
        step(objective(Returns(make)))
    message = str(info.value)
    assert message.startswith("regularizer 'latent-tv' (from specmatch-extras 0.1.0 [specmatch-extras:extras]): ")
    assert expected in message


def test_a_pair_transform_must_return_two_tensors():
    with pytest.raises(ComponentContractError) as info:
        step(objective(BadTransform(), transforms=True))
    assert str(info.value) == ("regularizer 'latent-tv' (from specmatch-extras 0.1.0 [specmatch-extras:extras]): "
                               "transform_pair() must return (z, target), two tensors; got Tensor")


def test_a_non_finite_regularizer_loss_stops_the_stage_naming_the_term():
    from specmatch.engine.training import NonFiniteGuard

    class OneProcess:
        num_processes = 1

    _, logs, _, _ = step(objective(Returns(lambda z: z.sum() * float("nan"))))
    guard = NonFiniteGuard(OneProcess(), "autoencoder", limit=0)
    guard.observe(to_floats(logs))
    with pytest.raises(SpecmatchError) as info:
        guard.skip(0)
    assert "non-finite loss/total, reg/0-latent-tv for 1 step(s) in a row" in str(info.value)


def test_a_pure_transform_logs_without_a_loss_term_and_any_positive_weight_applies_it():
    totals = {}
    for weight in (1.0, 1e-6):
        total, logs, _, _ = step(objective(PureTransform(), transforms=True, weight=weight))
        floats = to_floats(logs)
        assert floats["reg/0-latent-tv/level"] == 0.25
        assert "reg/0-latent-tv" not in floats  # no loss term, so none is logged or added
        totals[weight] = float(total.detach())
    assert totals[1.0] == totals[1e-6]  # the magnitude of weight does not scale a transform
    _, logs, _, _ = step(objective(PureTransform(), transforms=True, weight=0.0))
    assert "reg/0-latent-tv/level" not in to_floats(logs)  # weight 0: off, not applied, not logged


def test_start_step_counts_steps_done_like_the_logged_step_numbers():
    """start_step = 2: the term is off in the first two steps (indexes 0, 1; logged rows 1, 2) and on from
    the third (index 2, logged as row 3, since rows carry the number of steps done)."""
    seen = []

    class Marks(PureTransform):
        def transform_pair(self, z, target, ctx):
            seen.append(ctx.step)
            return z, target

    obj = objective(Marks(), transforms=True, start_step=2)
    for index in range(4):
        step(obj, index)
    assert seen == [2, 3]


# -- a factory that raises because of a value -------------------------------------------------------------

def test_a_factory_raising_valueerror_exits_2_naming_component_key_path_and_message(write_plugin, tmp_path):
    path = write_plugin("raising_data", """
        import attrs
        from specmatch import DatasetSpec, hookimpl, param

        @attrs.frozen(kw_only=True)
        class Params:
            channels: int = param(3, doc="image channels", ge=1)

        def build(params, ctx):
            raise ValueError(f"channels = {params.channels} is not supported, only 3")

        @hookimpl
        def specmatch_datasets():
            yield DatasetSpec(name="raising-data", factory=build, params=Params)
    """)
    recipe = write_recipe(tmp_path, MINIMAL_RECIPE.replace('"demo-photos"\nparams = { resolution = 16 }',
                                                           '"raising-data"\nparams = { channels = 1 }'))
    result = invoke_cli("--plugin-file", str(path), "run", str(recipe), "--output-dir", str(tmp_path / "run"))
    assert result.exit_code == 2, result.output
    assert (f"Error: {recipe}: data.params: building dataset 'raising-data' (from local file raising_data.py - "
            f"[file:{path.resolve()}]) failed: ValueError: channels = 1 is not supported, only 3") in result.output
    assert "factory of data raised" in (tmp_path / "run" / "run.log").read_text()  # the traceback is kept


@pytest.fixture
def write_plugin(tmp_path):
    import textwrap

    def write(name, source):
        path = tmp_path / f"{name}.py"
        path.write_text(textwrap.dedent(source), encoding="utf-8")
        return path

    return write


# -- the same checks in a real run ------------------------------------------------------------------------

RUNTIME_PLUGIN = """
import torch
from torch import nn
from specmatch import DenoiserSpec, RegularizerSpec, hookimpl


class HalfRes(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, stride=2, padding=1)

    def forward(self, x, t, y=None):
        return self.conv(x)


class PerSample(nn.Module):
    def loss(self, inputs):
        return inputs.z.abs().mean(dim=(1, 2, 3))


@hookimpl
def specmatch_denoisers():
    yield DenoiserSpec(name="half-res", factory=lambda params, ctx: HalfRes())


@hookimpl
def specmatch_regularizers():
    yield RegularizerSpec(name="per-sample", factory=lambda params, ctx: PerSample())
"""

TINY = MINIMAL_RECIPE + """
[train.autoencoder]
steps = 1
batch_size = 2

[train.denoiser]
steps = 1
batch_size = 2
cache_latents = false

[latent_stats]
images = 4
flips = false

[evaluation]
reconstruction_images = 0
num_samples = 0
frechet = false
spectrum_images = 0
"""


@pytest.mark.slow
def test_in_a_real_run_the_first_step_names_the_denoiser_and_the_regularizer(write_plugin, tmp_path):
    path = write_plugin("runtime_faults", RUNTIME_PLUGIN)
    recipe = write_recipe(tmp_path, TINY + '[denoiser]\nname = "half-res"\n')
    result = invoke_cli("--plugin-file", str(path), "run", str(recipe), "--output-dir", str(tmp_path / "a"))
    assert result.exit_code == 1
    assert ("Error: denoiser 'half-res' (from local file runtime_faults.py" in result.output
            and "expected (2, 4, 8, 8), got (2, 4, 4, 4)" in result.output)
    recipe = write_recipe(tmp_path, TINY + '[[regularizers]]\nname = "per-sample"\n', "reg.toml")
    result = invoke_cli("--plugin-file", str(path), "run", str(recipe), "--output-dir", str(tmp_path / "b"))
    assert result.exit_code == 1
    assert "Error: regularizer 'per-sample'" in result.output and "got shape (2,)" in result.output


def test_an_objective_missing_part_of_its_contract_is_named_before_training():
    import pytest

    from specmatch.core.specs import ObjectiveSpec, Provider
    from specmatch.engine.contracts import ComponentContractError, check_objective

    class LossOnly:
        def loss(self, model_fn, x0, **kwargs): ...

    spec = ObjectiveSpec(name="loss-only", factory=LossOnly,
                         provider=Provider(distribution="my-dist", version="1.0", plugin="my-dist:plugin"))
    with pytest.raises(ComponentContractError) as info:
        check_objective(LossOnly(), spec)
    message = str(info.value)
    assert "loss-only" in message and "my-dist" in message
    assert "alpha_sigma" in message and "to_x0_noise" in message and "t_min" in message
    from specmatch.diffusion.flow_matching import FlowMatching

    check_objective(FlowMatching(), spec)  # the built-in one is complete
