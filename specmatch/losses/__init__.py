"""Perceptual distances for reconstruction and evaluation, as plain torch modules.

- :mod:`specmatch.losses.perceptual`: shift-tolerant LPIPS with bundled weights; LPIPS from local backbone weights.

The reconstruction plugins wrap these; nothing here knows about recipes or the training engine. The
regularizers' math lives with each term in :mod:`specmatch.regularizers`.
"""
