"""Encoding Spectrum Matching (ESM): pull the latent's radial DCT spectrum towards the image's.

The spectra and the loss are :func:`specmatch.spectral.esm_loss`; this module holds the term's params and
its registration.
"""

import attrs

from specmatch import RegularizerSpec, hookimpl, param
from specmatch.regularizers.lazy import torch_classes


@attrs.frozen(kw_only=True)
class ESMParams:
    delta: float = param(1.0, doc="tilt of the image spectrum by (k+1)^delta (0: match the image itself)",
                         ge=-16, le=16)
    n_bins: int = param(16, doc="radial frequency bins", ge=1, le=4096)
    center: str = param("mean", doc="subtract each channel's spatial mean first", choices=("mean", "none"))
    remove_dc: bool = param(True, doc="zero the DC coefficient's power")
    log_power: bool = param(True, doc="compare log(1 + power) profiles")
    loss: str = param("kl", doc="KL(target || latent) or MSE of the distributions", choices=("kl", "l2"))
    blur: str = param("reference", doc="image low-pass before resizing: 'reference' = the authors' rule "
                                       "(Gaussian 7/1.2, skipped when the latent is 32 wide), or 'none'",
                      choices=("reference", "none"))


def _define() -> dict[str, type]:
    from torch import nn

    from specmatch.core.components import RegularizerInputs

    class ESMRegularizer(nn.Module):
        def __init__(self, params: ESMParams):
            super().__init__()
            self.params = params

        def loss(self, s: RegularizerInputs):
            from specmatch.spectral import esm_loss

            p = self.params
            # The paper applies ESM to the sampled latent z (not the mean) and the clean image x.
            return esm_loss(s.x, s.z, delta=p.delta, n_bins=p.n_bins, center=p.center, remove_dc=p.remove_dc,
                            log_power=p.log_power, loss=p.loss, blur=None if p.blur == "none" else p.blur)

    return {"ESMRegularizer": ESMRegularizer}


__getattr__ = torch_classes(_define, "ESMRegularizer")


def build_esm(params: ESMParams, ctx):
    from specmatch.regularizers.esm import ESMRegularizer

    return ESMRegularizer(params)


@hookimpl
def specmatch_regularizers():
    yield RegularizerSpec(name="esm", factory=build_esm, params=ESMParams, adaptive_layers={"encoder.last"},
                          summary="Encoding Spectrum Matching: latent radial DCT spectrum to the image's, "
                                  "flattened by f^delta (paper: weight 0.01, delta 1, no KL)")
