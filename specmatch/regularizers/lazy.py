"""``nn.Module`` classes of a light module, defined on first use.

A ``class X(nn.Module)`` statement needs torch when it runs. A term module is imported to register its term
and to validate recipes, which must not import torch, so it defines its classes inside a function and
serves them through a module ``__getattr__`` (PEP 562): ``from specmatch.regularizers.dsm import
DSMRegularizer`` defines them, once.
"""

from __future__ import annotations

import functools
from typing import Callable


def torch_classes(define: Callable[[], dict[str, type]], *names: str) -> Callable[[str], type]:
    """The module ``__getattr__`` serving ``names`` from ``define()``, which runs on the first such access.

    Any other name raises ``AttributeError`` without calling ``define`` (``hasattr`` probes stay torch-free).
    """

    @functools.cache
    def classes() -> dict[str, type]:
        defined = define()
        for name, cls in defined.items():
            cls.__qualname__ = name  # found by name like a top-level class (pickle, repr)
        return defined

    def __getattr__(name: str) -> type:
        if name not in names:
            raise AttributeError(name)
        return classes()[name]

    return __getattr__
