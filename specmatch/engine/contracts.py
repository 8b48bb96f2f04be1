"""Run-time checks of what plugin components return, so an author's mistake fails at the first step with a
message naming the component and its plugin, instead of a torch error deep inside the engine.

- a denoiser's output must have the shape of its input ``x_t`` (a tensor; ``(prediction, tokens)`` only when
  asked for hidden states with ``return_hidden_at``): checked by a forward hook installed when the engine
  builds the denoiser, so every caller (training, REPA, sampling) gets it without wiring;
- a regularizer's loss must be a scalar tensor, its pair transform must return two tensors;
- every lazy ``"module:attr"`` factory of the recipe is imported before the first stage trains
  (:func:`resolve_factories`), so a typo does not surface after hours of training.
"""

from __future__ import annotations

from typing import Any

from specmatch.core.errors import PluginError
from specmatch.core.spec_checks import who


class ComponentContractError(PluginError):
    """A built component returned something its contract does not allow (a bug in the plugin)."""


def _shape(value: Any) -> str:
    shape = getattr(value, "shape", None)
    return str(tuple(shape)) if shape is not None else type(value).__name__


class DenoiserOutputCheck:
    """Forward hook (with kwargs) of a built denoiser: the prediction has exactly the shape of ``x_t``.

    A class, not a closure, so the module stays picklable and deep-copyable (EMA copies keep the hook).
    """

    def __init__(self, label: str):
        self.label = label

    def __call__(self, module: Any, args: tuple, kwargs: dict, output: Any) -> None:
        import torch

        x = args[0] if args else kwargs.get("x", kwargs.get("x_t"))
        if not isinstance(x, torch.Tensor):
            return
        check_denoiser_output(self.label, x, output, hidden=kwargs.get("return_hidden_at") is not None)


def check_denoiser_output(label: str, x_t: Any, output: Any, *, hidden: bool = False) -> None:
    """Raise :class:`ComponentContractError` unless ``output`` is a prediction of ``x_t``'s shape."""
    import torch

    if hidden:
        if not (isinstance(output, tuple) and len(output) == 2):
            raise ComponentContractError(
                f"{label}: called with return_hidden_at, it must return (prediction, hidden), hidden being tokens (B, N, D) or a map (B, D, gh, gw); got "
                f"{type(output).__name__}")
        output = output[0]
    elif isinstance(output, (tuple, list)):
        raise ComponentContractError(
            f"{label}: returned a {type(output).__name__} of {len(output)}; it must return one tensor, the "
            f"prediction, shaped like x_t {tuple(x_t.shape)} (hidden states only when called with "
            f"return_hidden_at)")
    if not isinstance(output, torch.Tensor) or output.shape != x_t.shape:
        raise ComponentContractError(
            f"{label}: its prediction must have the shape of its input x_t; expected {tuple(x_t.shape)}, got "
            f"{_shape(output)}")


def install_denoiser_check(denoiser: Any, spec: Any) -> None:
    """Attach :class:`DenoiserOutputCheck` to a built denoiser (an ``nn.Module``; others are left alone)."""
    import torch

    if isinstance(denoiser, torch.nn.Module):
        denoiser.register_forward_hook(DenoiserOutputCheck(who(spec)), with_kwargs=True)


def check_regularizer_loss(name: str, value: Any, provider: Any = None, *, kind: str = "regularizer") -> None:
    """A regularizer's loss term must be a scalar tensor (non-finite values are the step guard's business:
    it skips the update and names the term, ``reg/<i>-<name>``, when they persist)."""
    import torch

    label = f"{kind} {name!r}" + (f" (from {provider} [{provider.plugin}])" if provider is not None else "")
    if not isinstance(value, torch.Tensor):
        raise ComponentContractError(
            f"{label}: loss() must return a scalar tensor (or (scalar, logs)); got {type(value).__name__}")
    if value.numel() != 1:
        raise ComponentContractError(
            f"{label}: loss() must return a scalar tensor (reduce it, e.g. with .mean()); got shape "
            f"{tuple(value.shape)}")
    if value.dim() != 0:
        raise ComponentContractError(
            f"{label}: loss() must return a 0-dimensional tensor; got shape {tuple(value.shape)} (use .reshape(()) "
            f"or .mean())")


def check_pair_output(name: str, out: Any, provider: Any = None) -> tuple[Any, Any]:
    """A pair transform returns ``(z, target)``, two tensors."""
    import torch

    if not (isinstance(out, tuple) and len(out) == 2 and all(isinstance(v, torch.Tensor) for v in out)):
        label = f"regularizer {name!r}" + (f" (from {provider} [{provider.plugin}])" if provider is not None else "")
        raise ComponentContractError(f"{label}: transform_pair() must return (z, target), two tensors; got "
                                     f"{type(out).__name__}")
    return out


def resolve_factories(resolved: Any) -> None:
    """Import every component factory of the recipe now (lazy ``"module:attr"`` included): a missing
    attribute fails the run before the first stage trains, with the component and its plugin named."""
    problems = []
    for comp in resolved.components.values():
        try:
            comp.spec.factory_callable()
        except PluginError as exc:
            problems.append(f"{comp.path}: {exc}")
    if problems:
        raise PluginError("\n".join(problems))


#: What the engine reads of an objective: training calls ``loss``; sampling converts with the schedule.
OBJECTIVE_MEMBERS = ("loss", "alpha_sigma", "to_x0_noise", "t_min", "t_max")


def check_objective(objective: Any, spec: Any) -> None:
    """Before training: an objective offers every member of the objective contract (docs/plugins.md)."""
    missing = [name for name in OBJECTIVE_MEMBERS if not hasattr(objective, name)]
    if missing:
        raise ComponentContractError(
            f"{who(spec)}: the built objective has no {', '.join(missing)}; an objective needs "
            f"{', '.join(OBJECTIVE_MEMBERS)} (see the objective contract in docs/plugins.md)")
