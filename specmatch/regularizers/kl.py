"""KL (SD-VAE): the posterior's KL divergence to N(0, I)."""

from specmatch import RegularizerSpec, hookimpl
from specmatch.regularizers.lazy import torch_classes


def _define() -> dict[str, type]:
    from torch import nn

    from specmatch.core.components import RegularizerInputs

    class KLRegularizer(nn.Module):
        def loss(self, s: RegularizerInputs):
            return s.posterior.kl().mean()

    return {"KLRegularizer": KLRegularizer}


__getattr__ = torch_classes(_define, "KLRegularizer")


def build_kl(params, ctx):
    from specmatch.regularizers.kl import KLRegularizer

    return KLRegularizer()


@hookimpl
def specmatch_regularizers():
    yield RegularizerSpec(name="kl", factory=build_kl, needs={"posterior"}, adaptive_layers={"encoder.last"},
                          summary="SD-VAE KL to N(0, I): per-sample sum over C,H,W, batch mean (paper: 1e-6)")
