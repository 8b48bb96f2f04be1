"""Noise that does not depend on how a batch is split over processes.

Data parallelism gives each process a contiguous slice of one global batch. If every process drew noise for
its own slice from its own generator, one process with batch 16 and two with batch 8 would train on
different noise and end with different weights. Instead every process seeds the same generator, draws the
noise of the *global* batch and keeps its own rows: then the split changes nothing but the float order of
the gradient all-reduce. The cost is drawing the other processes' rows too, small next to a forward pass.

The engine declares the current split with :func:`batch_rows`; the draws below honour it and are plain
draws outside it. A draw is sharded only when its first dimension is the batch dimension.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Callable, Iterator

import torch

#: (first row of this process, rows of the global batch), or None: not inside a split batch
_ROWS: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar("batch_rows", default=None)


@contextlib.contextmanager
def batch_rows(offset: int, total: int) -> Iterator[None]:
    """Within the block, batch-leading draws are rows ``offset...`` of a draw of ``total`` rows."""
    token = _ROWS.set((offset, total) if total > 0 else None)
    try:
        yield
    finally:
        _ROWS.reset(token)


def _draw(fn: Callable[..., torch.Tensor], shape: tuple[int, ...], generator: torch.Generator | None,
          device: torch.device | str, **kwargs) -> torch.Tensor:
    draw_device = generator.device if generator is not None else device
    rows = _ROWS.get()
    if rows is None or not shape or (rows == (0, shape[0])):
        return fn(shape, generator=generator, device=draw_device, **kwargs).to(device)
    offset, total = rows
    full = fn((max(total, offset + shape[0]), *shape[1:]), generator=generator, device=draw_device, **kwargs)
    return full[offset:offset + shape[0]].to(device)


def randn(shape, *, device: torch.device | str, generator: torch.Generator | None = None,
          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard-normal noise of ``shape`` on ``device``, drawn on the generator's device."""
    return _draw(torch.randn, tuple(shape), generator, device, dtype=dtype)


def rand(shape, *, device: torch.device | str, generator: torch.Generator | None = None,
         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """U[0, 1) noise of ``shape`` on ``device``, drawn on the generator's device."""
    return _draw(torch.rand, tuple(shape), generator, device, dtype=dtype)


def randint(high: int, shape, *, device: torch.device | str, generator: torch.Generator | None = None) -> torch.Tensor:
    """Integers in [0, high) of ``shape`` on ``device``, drawn on the generator's device."""
    def fn(size, generator, device):
        return torch.randint(0, high, size, generator=generator, device=device)

    return _draw(fn, tuple(shape), generator, device)
