"""Torch building blocks of the built-in models: the SD-VAE-style autoencoder, its posteriors and the PatchGAN."""
