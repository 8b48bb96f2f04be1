"""The arguments of the spectral functions: the validated ESM options record, input checks, the compute dtype."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Tuple, Union

import attrs
import torch

from specmatch.core.errors import SpecmatchError

#: A blur setting as the user gives it: ``"reference"``, ``"none"``, ``None`` or ``(kernel_size, sigma)``.
Blur = Union[str, None, Tuple[int, float]]
#: A blur setting resolved for one latent height: ``None`` (no blur) or ``(kernel_size, sigma)``.
BlurSpec = Optional[Tuple[int, float]]

#: The authors' anti-alias blur before the bicubic resize: 7 taps, sigma 1.2, zero padding.
REFERENCE_BLUR: Tuple[int, float] = (7, 1.2)
#: The authors skip the blur when the latent height equals this (f8 at 256 px).
REFERENCE_BLUR_SKIPPED_AT_HEIGHT = 32

_BLUR_CHOICES = "'reference', 'none', None or a (kernel_size, sigma) tuple"


class SpectralArgumentError(SpecmatchError, ValueError):
    """A bad argument to a spectral function (a ``ValueError`` and a ``SpecmatchError``)."""


def normalise_blur(blur: Blur) -> Blur:
    """Validate a blur setting: ``"reference"``, ``None`` (for ``None`` and ``"none"``) or an (int, float) tuple."""
    if isinstance(blur, str):
        if blur in ("reference", "none"):
            return None if blur == "none" else blur
        raise SpectralArgumentError(f"blur must be {_BLUR_CHOICES}, got {blur!r}")
    if blur is None:
        return None
    if isinstance(blur, (tuple, list)) and len(blur) == 2:
        size, sigma = blur
        size_ok = isinstance(size, int) and not isinstance(size, bool) and size >= 1 and size % 2 == 1
        sigma_ok = isinstance(sigma, (int, float)) and not isinstance(sigma, bool) and sigma > 0
        if size_ok and sigma_ok:
            return (int(size), float(sigma))
        raise SpectralArgumentError(
            f"blur (kernel_size, sigma) needs an odd kernel_size >= 1 and sigma > 0, got {tuple(blur)!r}"
        )
    raise SpectralArgumentError(f"blur must be {_BLUR_CHOICES}, got {blur!r}")


def blur_spec(blur: Blur, latent_height: int) -> BlurSpec:
    """The blur actually applied for a latent of this height (the authors' rule for ``"reference"``)."""
    blur = normalise_blur(blur)
    if blur == "reference":
        return None if latent_height == REFERENCE_BLUR_SKIPPED_AT_HEIGHT else REFERENCE_BLUR
    return blur


def _choice(*allowed: str):
    def check(_, attribute, value):
        if value not in allowed:
            names = " or ".join(repr(a) for a in allowed)
            raise SpectralArgumentError(f"{attribute.name} must be {names}, got {value!r}")

    return check


def _positive_int(_, attribute, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpectralArgumentError(f"{attribute.name} must be an integer >= 1, got {value!r}")


def _positive_number(_, attribute, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise SpectralArgumentError(f"{attribute.name} must be a number > 0, got {value!r}")


@attrs.frozen
class SpectrumOptions:
    """The settings of the ESM spectra and loss (method.md s2.2); the defaults are the authors' training call.

    Attributes:
        delta: tilt exponent; the target bins are multiplied by ``(k + 1) ** delta``, k = 0 .. n_bins - 1.
        n_bins: number of corner-normalised radial bins (>= 1).
        center: ``"mean"`` subtracts each (sample, channel) spatial mean first; ``"none"`` does not.
        remove_dc: set the DC power ``P(0, 0)`` to 0 before binning.
        log_power: apply ``s -> log(1 + s + eps)`` to both spectra before normalising.
        loss: ``"kl"`` (KL(target || latent), the authors' choice) or ``"l2"`` (MSE between distributions).
        blur: how the image reaches the latent grid: ``"reference"`` (Gaussian 7 taps, sigma 1.2, skipped iff
            the latent height is 32), ``None`` or ``"none"`` (no blur), or ``(kernel_size, sigma)`` (always).
        eps: floor of the power clamp, bin-count guard and log/normalise/KL guard.

    Bad values raise :class:`SpectralArgumentError` at construction.
    """

    delta: float = 1.0
    n_bins: int = attrs.field(default=16, validator=_positive_int)
    center: str = attrs.field(default="mean", validator=_choice("mean", "none"))
    remove_dc: bool = True
    log_power: bool = True
    loss: str = attrs.field(default="kl", validator=_choice("kl", "l2"))
    blur: Blur = attrs.field(default="reference", converter=normalise_blur)
    eps: float = attrs.field(default=1e-8, validator=_positive_number)

    @classmethod
    def resolve(cls, options: Optional["SpectrumOptions"], fields: Mapping[str, Any]) -> "SpectrumOptions":
        """``options`` (or the defaults) with the keyword ``fields`` replaced: the keyword call form."""
        base = cls() if options is None else options
        if not isinstance(base, cls):
            raise SpectralArgumentError(f"options must be a SpectrumOptions, got {type(base).__name__}")
        return attrs.evolve(base, **fields) if fields else base

    def blur_at(self, latent_height: int) -> BlurSpec:
        """The blur applied on the way to a latent grid of this height."""
        return blur_spec(self.blur, latent_height)


def check_tensor(name: str, t: torch.Tensor, ndim: int = 4) -> None:
    if not isinstance(t, torch.Tensor):
        raise SpectralArgumentError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != ndim:
        raise SpectralArgumentError(
            f"{name} must be a {ndim}-D tensor (batch, channels, height, width), got shape {tuple(t.shape)}"
        )
    if not t.is_floating_point():
        raise SpectralArgumentError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")


def compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float64 if any input is float64, else float32: half inputs are upcast (the fp32 island)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32
