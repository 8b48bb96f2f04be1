"""Caching of the data-independent matrices behind the spectral functions.

Every step of ESM and DSM that does not depend on the data is a fixed matrix (DCT, blur, bicubic resize,
radial binning, block projection). Each is built once, in float64 on the CPU so that the cached copy is as
exact as the dtype it is cast to, and kept per size, options, device and dtype.
"""

from __future__ import annotations

import functools

import torch


def cached_operator(build):
    """``lru_cache`` a matrix builder, running it with autograd and inference mode off.

    Inference mode must be off so that a first call under ``torch.inference_mode()`` does not cache an
    inference tensor, which later training calls could not save for backward.
    """

    @functools.lru_cache(maxsize=64)
    @functools.wraps(build)
    def cached(*args):
        with torch.inference_mode(False), torch.no_grad():
            return build(*args)

    return cached
