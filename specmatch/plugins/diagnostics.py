"""Built-in latent diagnostics (kind ``diagnostic``), registered like a third party's (docs/evaluation.md)."""

from specmatch import DiagnosticSpec, hookimpl


def build_latent_spectrum(params, ctx):
    from specmatch.analysis import LatentSpectrum

    return LatentSpectrum(deltas=(0.0, 1.0))


@hookimpl
def specmatch_diagnostics():
    yield DiagnosticSpec(name="latent-spectrum", factory=build_latent_spectrum, output="spectrum.json",
                         summary="radial DCT band distributions of images and latents, KL to the delta = 0 and 1 "
                                 "targets, log-log slopes")
