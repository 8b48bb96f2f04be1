"""A working plugin: one regularizer and one dataset, with lazy factories in ``specmatch_dummy.heavy``."""

import attrs

from specmatch import DatasetSpec, RegularizerSpec, hookimpl, param


@attrs.frozen(kw_only=True)
class SmoothParams:
    strength: float = param(1.0, doc="how smooth", ge=0)


@attrs.frozen(kw_only=True)
class NoiseParams:
    resolution: int = param(16, doc="image side", ge=4)


@hookimpl
def specmatch_regularizers():
    yield RegularizerSpec(name="dummy-smooth", factory="specmatch_dummy.heavy:build_smooth", params=SmoothParams,
                          aliases=("dsmooth",), summary="a dummy regularizer")


@hookimpl
def specmatch_datasets():
    yield DatasetSpec(name="dummy-noise", factory="specmatch_dummy.heavy:build_noise", params=NoiseParams,
                      summary="a dummy dataset")
