"""Evaluation metrics as plain torch/numpy functions.

* ``inception.InceptionFeatures``: the FID feature network (TF-Inception-v3, 2048-d pool features).
* ``inception_full``: pytorch-fid's full Inception network from the user's file (pool, sFID's spatial features,
  IS's logits); ``dinov2``: DINOv2 class tokens (FD-DINOv2); ``weights_files``: the files users provide.
* ``frechet``: Gaussian feature statistics, the Frechet distance (FID) and the kernel inception distance (KID).
* ``reconstruction``: per-image PSNR and SSIM.
* ``streaming``: the accumulators of evaluation (moments, kept subsets, per-image sums, stream accumulators).
"""
