"""Stands for model code: imported only when a component is built, never by listing or validation."""


def build_smooth(params, ctx):
    return ("smooth", params.strength)


def build_noise(params, ctx):
    return {"train": [], "test": []}
