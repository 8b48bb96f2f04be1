"""Latent diffusion: a DiT denoiser, the linear-interpolant flow-matching objective and ODE/SDE samplers.

* ``dit``: ``DiT``, a diffusion transformer with adaLN-Zero blocks, and size presets (``build_dit``).
* ``flow_matching``: ``FlowMatching``, x_t = (1 - t) x0 + t eps with velocity target eps - x0.
* ``samplers``: Euler, Heun and Euler-Maruyama integration from t = 1 (noise) to t = 0 (data), with
  classifier-free guidance restricted to a time interval.

Time convention everywhere: t = 0 is data, t = 1 is pure Gaussian noise (SiT / REPA).
"""
