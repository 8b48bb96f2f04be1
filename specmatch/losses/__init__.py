"""Loss building blocks for the baselines, as plain torch functions and modules.

- :mod:`specmatch.losses.vf`: VA-VAE's vision-foundation (VF) alignment loss (margin cosine + distance matrix).
- :mod:`specmatch.losses.equivariance`: EQ-VAE's scale-and-rotate pair transform and the scale-equivariance
  downsampling pair.
- :mod:`specmatch.losses.perceptual`: perceptual distances (shift-tolerant LPIPS with bundled weights; LPIPS from
  local backbone weights).

The regularizer plugins wrap these; nothing here knows about recipes or the training engine.
"""
