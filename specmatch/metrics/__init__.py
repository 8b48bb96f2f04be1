"""Evaluation metrics as plain torch/numpy functions.

* ``inception.InceptionFeatures``: the FID feature network (TF-Inception-v3, 2048-d pool features).
* ``frechet``: Gaussian feature statistics, the Frechet distance (FID) and the kernel inception distance (KID).
* ``reconstruction``: per-image PSNR and SSIM.
"""
