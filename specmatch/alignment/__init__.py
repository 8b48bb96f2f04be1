"""Alignment targets: frozen feature teachers and filters on their features.

- :mod:`specmatch.alignment.teachers`: teachers mapping images in [-1, 1] (B, 3, H, W) to feature maps
  (B, D, gh, gw): any timm model from a local weights file (e.g. DINOv2 for VA-VAE and REPA), and a clearly
  labelled offline stand-in (ST-LPIPS AlexNet conv features).
- :mod:`specmatch.alignment.dog`: the difference-of-Gaussians band-pass applied to a teacher's feature map
  (REPA with a DoG target; its settings are UNVERIFIED).

Teachers never download anything: real weights come from a file the user names (with an optional sha256).
"""
