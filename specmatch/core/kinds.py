"""The one table of component kinds: everything else that lists kinds, hooks or recipe tables derives from it.

A kind's recipe-facing ``name`` (``components list --kind``), the pluggy ``hook`` that registers it, the
recipe ``table`` that names one (``[data]`` holds a ``dataset``), its human ``label``, its spec class, and
whether the table is an array of tables (``[[regularizers]]``) or may be omitted in favour of the default a
plugin declares (``default_for_kind=True`` on its spec). Nothing here imports torch.
"""

from __future__ import annotations

import attrs

from .specs import (
    AlignmentSpec,
    AutoencoderSpec,
    ComponentSpec,
    DatasetSpec,
    DenoiserRegularizerSpec,
    DenoiserSpec,
    DiscriminatorSpec,
    ObjectiveSpec,
    PerceptualSpec,
    RegularizerSpec,
    SamplerSpec,
)


@attrs.frozen(kw_only=True)
class Kind:
    """One kind of component. ``name`` comes from the spec class, so the two cannot disagree."""

    spec_class: type[ComponentSpec]
    hook: str  # the registration hook in hookspecs.py
    table: str  # top-level recipe key
    label: str
    doc: str
    array: bool = False  # [[table]]: any number of components, in order
    defaulted: bool = False  # an omitted table means "the default a plugin declares for this kind"

    @property
    def name(self) -> str:
        return self.spec_class.kind

    @property
    def header(self) -> str:
        """The TOML header of one such table: ``[data]`` or ``[[regularizers]]``."""
        return f"[[{self.table}]]" if self.array else f"[{self.table}]"


#: kind name -> Kind, in the order listings and docs show them.
KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind(spec_class=AutoencoderSpec, hook="specmatch_autoencoders", table="autoencoder", label="autoencoder",
             doc="images to a latent posterior and back"),
        Kind(spec_class=RegularizerSpec, hook="specmatch_regularizers", table="regularizers", array=True,
             label="latent regularizer", doc="loss terms and (latent, target) transforms of autoencoder training"),
        Kind(spec_class=DenoiserSpec, hook="specmatch_denoisers", table="denoiser", label="denoiser",
             doc="networks trained on normalised latents"),
        Kind(spec_class=DenoiserRegularizerSpec, hook="specmatch_denoiser_regularizers",
             table="denoiser_regularizers", array=True, label="denoiser regularizer",
             doc="loss terms of denoiser training, e.g. representation alignment (REPA)"),
        Kind(spec_class=AlignmentSpec, hook="specmatch_alignment_targets", table="alignment",
             label="alignment target", doc="frozen teachers for feature alignment (VA-VAE, REPA)"),
        Kind(spec_class=DatasetSpec, hook="specmatch_datasets", table="data", label="dataset", doc="image datasets"),
        Kind(spec_class=ObjectiveSpec, hook="specmatch_objectives", table="objective", defaulted=True,
             label="diffusion objective", doc="training objectives for denoisers"),
        Kind(spec_class=SamplerSpec, hook="specmatch_samplers", table="sampler", defaulted=True, label="sampler",
             doc="latent samplers"),
        Kind(spec_class=PerceptualSpec, hook="specmatch_perceptual_losses", table="perceptual",
             label="perceptual loss", doc="perceptual distances for reconstruction"),
        Kind(spec_class=DiscriminatorSpec, hook="specmatch_discriminators", table="adversarial",
             label="discriminator", doc="adversarial critics for autoencoder training"),
    )
}

#: kind name -> its spec class (what a registration hook must return).
SPEC_CLASSES: dict[str, type[ComponentSpec]] = {k.name: k.spec_class for k in KINDS.values()}

#: recipe table -> kind, for the tables that name registry components.
KIND_OF_TABLE: dict[str, Kind] = {k.table: k for k in KINDS.values()}
