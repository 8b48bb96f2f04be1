"""The plugin module named by this package's ``specmatch`` entry point.

It stays light on purpose: only ``attrs`` and ``specmatch`` are imported here, so ``specmatch plugins list``,
``components list`` and ``validate`` never import torch. The torch code lives in
:mod:`specmatch_wavelet.regularizer` and :mod:`specmatch_wavelet.checkerboards`, imported inside the
factories, i.e. only when a run actually builds the component.
"""

import attrs

from specmatch import DatasetSpec, Problem, RegularizerSpec, hookimpl, param

#: Haar sub-bands; the first letter is the filter along the width (x), the second along the height (y).
BANDS = ("lh", "hl", "hh")


# -- wavelet-energy --------------------------------------------------------------------------------------

@attrs.frozen(kw_only=True)
class WaveletEnergyParams:
    levels: int = param(1, doc="Haar levels: each level splits the previous low-pass (LL) band again; "
                               "latent sides must be divisible by 2**levels", ge=1)
    bands: tuple[str, ...] = param(BANDS, doc="high-frequency sub-bands penalised at every level: 'lh' "
                                              "(horizontal edges), 'hl' (vertical edges), 'hh' (diagonals)")


def build_wavelet_energy(params: WaveletEnergyParams, ctx):
    from specmatch_wavelet.regularizer import WaveletEnergyRegularizer

    return WaveletEnergyRegularizer(levels=params.levels, bands=params.bands)


# -- checkerboards ---------------------------------------------------------------------------------------

@attrs.frozen(kw_only=True)
class CheckerboardsParams:
    resolution: int = param(32, doc="image side in pixels", ge=4)
    num_images: int = param(1024, doc="training images (drawn on the fly, nothing is stored)", ge=1)
    num_test_images: int = param(256, doc="test images, from a random stream separate from training", ge=1)
    seed: int = param(0, doc="seed of every image's frequency, phase and two colours")


def build_checkerboards(params: CheckerboardsParams, ctx):
    from specmatch_wavelet.checkerboards import CheckerboardsDataset

    common = dict(resolution=params.resolution, seed=params.seed)
    return {"train": CheckerboardsDataset(split="train", num_images=params.num_images, **common),
            "test": CheckerboardsDataset(split="test", num_images=params.num_test_images, **common)}


# -- hooks -----------------------------------------------------------------------------------------------

@hookimpl
def specmatch_regularizers():
    yield RegularizerSpec(name="wavelet-energy", factory=build_wavelet_energy, params=WaveletEnergyParams,
                          aliases=("haar-energy",),
                          summary="share of the latent's energy in its Haar high-frequency sub-bands "
                                  "(0 = smooth latent, 1 = all detail)")


@hookimpl
def specmatch_datasets():
    yield DatasetSpec(name="checkerboards", factory=build_checkerboards, params=CheckerboardsParams,
                      summary="synthetic checkerboards with random frequency, phase and colours; "
                              "label = frequency class")


@hookimpl
def specmatch_validate_recipe(recipe):
    """``bands`` is a set drawn from BANDS: a check across the items of one field, so it lives here."""
    problems = []
    for comp in recipe.regularizers():
        if comp.spec.name != "wavelet-energy":
            continue
        bands = comp.params.bands
        where = f"{comp.path}.params.bands"
        unknown = [b for b in bands if b not in BANDS]
        if unknown:
            problems.append(Problem(where, f"unknown sub-band(s) {', '.join(map(repr, unknown))}; "
                                           f"expected a subset of {', '.join(map(repr, BANDS))}"))
        if not bands:
            problems.append(Problem(where, "expected at least one sub-band"))
        if len(set(bands)) != len(bands):
            problems.append(Problem(where, f"expected each sub-band once; got {list(bands)}"))
    return problems
