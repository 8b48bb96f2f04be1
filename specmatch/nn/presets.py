"""Autoencoder presets as plain data (no torch), so recipes are checked without building models."""

SDVAE_PRESETS: dict[str, dict] = {
    # the paper's presets (method.md s4.1); latent shapes at 256^2: 4x32^2, 16x16^2, 64x8^2, 256x4^2
    "f8d4": {"channels": (128, 256, 512, 512), "latent_channels": 4},
    "f16d16": {"channels": (128, 128, 256, 256, 512), "latent_channels": 16},
    "f32d64": {"channels": (128, 128, 256, 256, 512, 512), "latent_channels": 64},
    "f64d256": {"channels": (128, 128, 256, 256, 512, 512, 1024), "latent_channels": 256},
    # CPU presets (offline.md s5)
    "tiny-f4d4": {"channels": (32, 64, 128), "latent_channels": 4},
    "tiny-f8d16": {"channels": (32, 64, 128, 128), "latent_channels": 16},
    "micro-f2d4": {"channels": (16, 32), "latent_channels": 4, "norm_groups": 8},
}


#: Padding layouts of the encoder's stride-2 downsampling conv (see ``specmatch.nn.autoencoder.Downsample``).
DOWNSAMPLE_PADDINGS: tuple[str, ...] = ("symmetric", "ldm")


def downsample_factor(channels: tuple[int, ...]) -> int:
    return 2 ** (len(channels) - 1)
