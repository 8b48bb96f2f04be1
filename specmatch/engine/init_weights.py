"""Loading ``autoencoder.init`` into a freshly built autoencoder: fine-tuning starts from those weights.

An autoencoder whose weights may come in another naming (a diffusers or LDM file for the built-in ``sdvae``, a
bare diffusers file for ``diffusers-vae``) has an ``adapt_state_dict(state) -> state`` method that renames
them; everything else must match the module's ``state_dict`` exactly. A mismatch names every missing,
unexpected and wrong-shaped tensor.
"""

from __future__ import annotations

import logging

from torch import nn

from specmatch.core.errors import WeightsError
from specmatch.core.init_source import KEY, InitSource

from .checkpoint import safetensors_problem

log = logging.getLogger(__name__)

#: names listed per kind of mismatch before "... and N more"
MAX_LISTED = 20


def _listing(label: str, items: list[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    more = f" ... and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else ""
    return f"\n  {label} ({len(items)}): {shown}{more}"


def mismatch(state: dict, expected: dict) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, wrong-shaped) tensor names of ``state`` against a module's ``expected`` state."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k} {tuple(state[k].shape)} (the model has {tuple(v.shape)})" for k, v in sorted(expected.items())
              if k in state and tuple(state[k].shape) != tuple(v.shape)]
    return missing, unexpected, shapes


def load_state(module: nn.Module, state: dict, where: str) -> None:
    """Load ``state`` (already in the module's naming) into ``module``, or a WeightsError naming the mismatch."""
    missing, unexpected, shapes = mismatch(state, module.state_dict())
    if missing or unexpected or shapes:
        listing = "".join(_listing(label, items) for label, items in
                          (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)) if items)
        raise WeightsError(f"{where}: the weights do not fit the {type(module).__name__} the recipe builds "
                           f"(check the autoencoder's params against the model that wrote them):{listing}")
    module.load_state_dict(state)


def read_state(path) -> dict:
    """A safetensors file's tensors on the CPU; a damaged file is a WeightsError naming it."""
    from safetensors.torch import load_file

    problem = safetensors_problem(path)
    if problem:
        raise WeightsError(f"{KEY}: cannot read {path}: {problem}")
    try:
        return load_file(str(path), device="cpu")
    except Exception as e:  # noqa: BLE001 - the header looked fine but the content does not
        raise WeightsError(f"{KEY}: cannot read {path}: {e}") from None


def load_init(module: nn.Module, source: InitSource) -> None:
    """Start ``module`` from the weights ``source`` names (renamed by its ``adapt_state_dict`` if it has one)."""
    state = read_state(source.file)
    adapt = getattr(module, "adapt_state_dict", None)
    if callable(adapt):
        state = adapt(state)
    load_state(module, state, f"{KEY}: {source.file}")
    log.info(f"[autoencoder] initial weights from {source.file} (sha256 {source.sha256[:16]}...)")
