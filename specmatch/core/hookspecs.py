"""Hook specifications: the whole contract between specmatch and its plugins.

Registration hooks take no arguments and return (or yield) spec records of one kind. Built-in components
use exactly these hooks. A plugin module implements any subset of them::

    from specmatch import hookimpl, RegularizerSpec

    @hookimpl
    def specmatch_regularizers():
        yield RegularizerSpec(
            name="wavelet-energy",
            factory="specmatch_wavelet.regularizer:build",   # imported only when a recipe uses it
            params="specmatch_wavelet.regularizer:WaveletParams",
            summary="Penalise high-band wavelet energy of the latent.",
        )

Hooks evolve by gaining optional arguments; implementations may accept fewer arguments than the spec.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from .markers import hookspec

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .errors import Problem
    from .specs import (
        AlignmentSpec,
        AutoencoderSpec,
        DatasetSpec,
        DenoiserRegularizerSpec,
        DenoiserSpec,
        DiscriminatorSpec,
        ObjectiveSpec,
        PerceptualSpec,
        RegularizerSpec,
        SamplerSpec,
    )


@hookspec
def specmatch_autoencoders() -> Iterable["AutoencoderSpec"]:
    """Autoencoders (kind ``autoencoder``): images to a latent posterior and back.

    Example: ``yield AutoencoderSpec(name="sdvae", factory="pkg.ae:build", params="pkg.ae:Params")``.
    """


@hookspec
def specmatch_regularizers() -> Iterable["RegularizerSpec"]:
    """Latent regularizers (kind ``regularizer``): KL, ESM, DSM, VA-VAE, EQ-VAE, ...

    A regularizer may add a loss term, transform the (latent, target) pair before decoding
    (``transforms_pair=True``), or both. ``needs`` declares what it reads (e.g. ``{"features"}``).
    """


@hookspec
def specmatch_denoisers() -> Iterable["DenoiserSpec"]:
    """Denoisers (kind ``denoiser``): networks trained on normalised latents."""


@hookspec
def specmatch_denoiser_regularizers() -> Iterable["DenoiserRegularizerSpec"]:
    """Denoiser regularizers (kind ``denoiser_regularizer``): loss terms of denoiser training, e.g. REPA.

    ``needs`` declares what the term reads (``{"hidden", "features"}`` for REPA) and ``tap_param`` the params
    key of the denoiser tap it aligns.
    """


@hookspec
def specmatch_alignment_targets() -> Iterable["AlignmentSpec"]:
    """Alignment targets (kind ``alignment``): frozen teachers whose features regularizers align to."""


@hookspec
def specmatch_datasets() -> Iterable["DatasetSpec"]:
    """Image datasets (kind ``dataset``): return ``(image in [-1, 1], label)`` items."""


@hookspec
def specmatch_objectives() -> Iterable["ObjectiveSpec"]:
    """Diffusion training objectives (kind ``objective``), e.g. flow matching."""


@hookspec
def specmatch_samplers() -> Iterable["SamplerSpec"]:
    """Samplers (kind ``sampler``) that turn a trained denoiser into latents."""


@hookspec
def specmatch_perceptual_losses() -> Iterable["PerceptualSpec"]:
    """Perceptual distances (kind ``perceptual``) used in autoencoder reconstruction losses."""


@hookspec
def specmatch_discriminators() -> Iterable["DiscriminatorSpec"]:
    """Discriminators (kind ``discriminator``) for the adversarial autoencoder term."""


@hookspec
def specmatch_validate_recipe(recipe: Any) -> Iterable["Problem"]:
    """Extra cross-checks on a resolved recipe; return problems (every plugin's results are collected).

    ``recipe`` is a :class:`specmatch.core.recipe.ResolvedRecipe`; nothing is built yet.
    """
