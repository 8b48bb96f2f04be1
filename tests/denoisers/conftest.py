"""Shared builders of the denoiser tests: the four families as tiny CPU models through their own builders."""

from __future__ import annotations

from typing import Any, Callable

import pytest
import torch

from specmatch.denoisers.adm_unet import build_adm_unet
from specmatch.denoisers.lightningdit import build_lightningdit
from specmatch.denoisers.sit import build_sit
from specmatch.denoisers.uvit import build_uvit

#: family -> builder of its micro preset on a latent (C, H, W); transformers use patch 2.
MICRO: dict[str, Callable[..., torch.nn.Module]] = {
    "sit": lambda c, h, w, **kw: build_sit("sit-micro", input_size=h, in_channels=c, patch_size=2, **kw),
    "uvit": lambda c, h, w, **kw: build_uvit("uvit-micro", input_size=h, in_channels=c, patch_size=2, **kw),
    "lightningdit": lambda c, h, w, **kw: build_lightningdit("lightningdit-micro", input_size=h, in_channels=c,
                                                             patch_size=2, **kw),
    "adm-unet": lambda c, h, w, **kw: build_adm_unet("adm-micro", in_channels=c, **kw),
}
FAMILIES = tuple(MICRO)
#: families whose original initialisation makes a fresh network output exactly zero
ZERO_AT_INIT = ("sit", "lightningdit", "adm-unet")


def micro(family: str, channels: int = 4, side: int = 8, **kw: Any) -> torch.nn.Module:
    torch.manual_seed(0)
    return MICRO[family](channels, side, side, **kw)


def randomize(model: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Give every parameter a random value, so zero-initialised layers no longer hide the paths behind them."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return model


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors gain nothing from intra-op threads on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(name="build")
def build_fixture():
    """``build(family, channels=4, side=8, **kw)``: the family's micro model, seeded."""
    return micro


@pytest.fixture(name="randomize")
def randomize_fixture():
    """``randomize(model)``: every parameter random (zero-initialised layers no longer hide what is behind)."""
    return randomize


def pytest_generate_tests(metafunc):
    """A test taking ``family`` runs once per denoiser family."""
    if "family" in metafunc.fixturenames:
        metafunc.parametrize("family", FAMILIES)
