"""Denoiser families beside the DiT (:mod:`specmatch.diffusion.dit`): SiT, U-ViT, LightningDiT and an
ADM-style U-Net, one module each, registered by :mod:`specmatch.plugins.denoisers` (docs/denoisers.md)."""
