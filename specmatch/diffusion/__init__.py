"""Latent diffusion: a DiT denoiser, three objectives on Gaussian paths and five samplers (docs/diffusion.md).

* ``dit``: ``DiT``, a diffusion transformer with adaLN-Zero blocks, and size presets (``build_dit``).
* ``gaussian_path``: what every objective shares (x_t = alpha x0 + sigma eps, the regression loss).
* ``flow_matching``: ``FlowMatching``, x_t = (1 - t) x0 + t eps with velocity target eps - x0, SD3 time shift.
* ``ddpm``: ``DDPMNoise``, noise prediction on Stable Diffusion's 1000-step linear-beta schedule (U-ViT).
* ``v_prediction``: ``VPrediction``, v = alpha eps - sigma x0 on the continuous cosine schedule.
* ``samplers``: Euler, Heun, Euler-Maruyama, DDIM and DPM-Solver++ 2M, each a callable on the engine's sampling
  context (which applies classifier-free guidance with its interval).
* ``compatibility``: the facts that let ``validate`` refuse a sampler/objective pair that cannot work.

Time convention everywhere: t = 0 is data, t = 1 is pure Gaussian noise (SiT / REPA).
"""
