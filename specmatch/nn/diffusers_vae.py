"""A diffusers ``AutoencoderKL`` (SD 1.x/2.x, SDXL, SD3, FLUX VAEs) behind specmatch's autoencoder protocol.

The wrapped model keeps diffusers' own module names under ``vae.``; ``encode`` returns specmatch's
``DiagonalGaussian`` over the same moments diffusers computes (encoder, then ``quant_conv`` when the config
has one), ``decode`` is diffusers' decode (``post_quant_conv`` when present, then the decoder). The reference
layers of adaptive weights are the encoder's and the decoder's output convs, as in ``SDVAE``.

Nothing is ever downloaded: weights load from a local ``save_pretrained`` folder or a single checkpoint file
with ``local_files_only`` and ``HF_HUB_OFFLINE`` set.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from specmatch.core.errors import SpecmatchError, WeightsError
from specmatch.nn.autoencoder import EncodeDecode
from specmatch.nn.posterior import DiagonalGaussian

INSTALL_HINT = "pip install 'specmatch[diffusers]' (or pip install diffusers)"


def import_diffusers():
    """The diffusers module, offline; a SpecmatchError with the install command when it is missing."""
    os.environ["HF_HUB_OFFLINE"] = "1"  # read when huggingface_hub is first imported
    try:
        import diffusers
        import huggingface_hub.constants as hub_constants
    except ImportError as exc:
        raise SpecmatchError(f"the diffusers-vae autoencoder and diffusers export need the diffusers package, "
                             f"which is not installed ({exc}); {INSTALL_HINT}") from None
    hub_constants.HF_HUB_OFFLINE = True  # already imported elsewhere: switch it off there too
    return diffusers


def load_autoencoder_kl(path: Path, config: Path | None = None):
    """A diffusers ``AutoencoderKL`` in float32 from a local folder (``config.json`` and
    ``diffusion_pytorch_model.safetensors``, or a pipeline folder with them under ``vae/``) or a single
    ``.safetensors`` checkpoint (with ``config``, a folder holding the matching ``config.json``)."""
    diffusers = import_diffusers()
    if path.is_dir():
        folder = path / "vae" if not (path / "config.json").is_file() and (path / "vae" / "config.json").is_file() \
            else path
        if not (folder / "config.json").is_file():
            raise WeightsError(f"{path} is not a diffusers AutoencoderKL folder: no config.json (nor vae/config.json)")
        try:
            return diffusers.AutoencoderKL.from_pretrained(str(folder), local_files_only=True, use_safetensors=True,
                                                           torch_dtype=torch.float32)
        except (OSError, ValueError, EnvironmentError) as exc:
            raise WeightsError(f"cannot load the diffusers AutoencoderKL in {folder}: {exc}") from None
    if path.is_file():
        if config is None:
            raise WeightsError(f"{path} is a single checkpoint file: give params.config, a local folder with its "
                               f"config.json (nothing is downloaded)")
        try:
            return diffusers.AutoencoderKL.from_single_file(str(path), config=str(config), local_files_only=True,
                                                            torch_dtype=torch.float32)
        except (OSError, ValueError, EnvironmentError) as exc:
            raise WeightsError(f"cannot load the checkpoint {path} with the config in {config}: {exc}") from None
    raise WeightsError(f"diffusers VAE weights not found: {path} does not exist (nothing is downloaded; give the "
                       f"folder a pipeline's save_pretrained wrote, or a local checkpoint file)")


class DiffusersVAE(EncodeDecode, nn.Module):
    """specmatch's autoencoder protocol over a diffusers ``AutoencoderKL`` (kept as ``self.vae``)."""

    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae
        cfg = vae.config
        self._latent_channels = int(cfg.latent_channels)
        self._factor = 2 ** (len(cfg.block_out_channels) - 1)
        # the config's latent scaling (z - shift) * scale; kept for export and recorded, while the denoiser's
        # latents are normalised by the run's own latent statistics, as for every autoencoder
        self.scaling_factor = float(cfg.scaling_factor)
        self.shift_factor = float(cfg.shift_factor) if cfg.shift_factor is not None else 0.0

    @property
    def latent_channels(self) -> int:
        return self._latent_channels

    @property
    def downsample_factor(self) -> int:
        return self._factor

    @property
    def encoder_last_layer(self) -> nn.Parameter:
        return self.vae.encoder.conv_out.weight

    @property
    def decoder_last_layer(self) -> nn.Parameter:
        return self.vae.decoder.conv_out.weight

    def encode(self, x: Tensor) -> DiagonalGaussian:
        moments = self.vae.encoder(x)
        if getattr(self.vae, "quant_conv", None) is not None:
            moments = self.vae.quant_conv(moments)
        return DiagonalGaussian(moments)

    def decode(self, z: Tensor) -> Tensor:
        return self.vae.decode(z, return_dict=False)[0]

    def adapt_state_dict(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """A bare diffusers state dict (``diffusion_pytorch_model.safetensors``) under this module's ``vae.``."""
        if state and not any(k.startswith("vae.") for k in state):
            return {f"vae.{k}": v for k, v in state.items()}
        return state

    def to_diffusers(self) -> nn.Module:
        """The wrapped ``AutoencoderKL`` itself (``specmatch export --format diffusers``)."""
        return self.vae

    def describe(self) -> dict[str, Any]:
        return {"latent_channels": self.latent_channels, "downsample_factor": self.downsample_factor,
                "scaling_factor": self.scaling_factor, "shift_factor": self.shift_factor}
