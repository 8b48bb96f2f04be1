"""The engine: one accelerate ``Accelerator``, explicit training loops, checkpoints, latent statistics and
evaluation. Components never choose devices; the engine moves and wraps them."""
