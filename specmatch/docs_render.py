"""Rendering of component parameters as ready-to-paste TOML (used by ``components info`` and the docs)."""

from __future__ import annotations

from typing import Any

from .core.specs import ComponentSpec

_TABLE_OF_KIND = {
    "dataset": ("[data]", False), "autoencoder": ("[autoencoder]", False),
    "regularizer": ("[[regularizers]]", True), "perceptual": ("[perceptual]", False),
    "discriminator": ("[adversarial]", False), "alignment": ("[alignment]", False),
    "denoiser": ("[denoiser]", False), "objective": ("[objective]", False), "sampler": ("[sampler]", False),
}


def _literal(value: Any) -> str:
    import tomli_w

    return tomli_w.dumps({"v": value}).strip()[4:]


def toml_snippet(spec: ComponentSpec, rows: list[dict[str, Any]]) -> str:
    header, with_weight = _TABLE_OF_KIND.get(spec.kind, (f"[{spec.kind}]", False))
    lines = [header, f'name = "{spec.name}"']
    if with_weight:
        lines += ["weight = 1.0", "start_step = 0"]
    params = []
    for r in rows:
        default = r["default"]
        if default == "(required)" or default is None:
            params.append(f"# {r['name']} = ...  ({r['doc']})")
            continue
        try:
            params.append(f"{r['name']} = {_literal(list(default) if isinstance(default, tuple) else default)}")
        except Exception:
            params.append(f"# {r['name']} = {default!r}")
    if params:
        lines.append(f"[{header.strip('[]')}.params]" if not with_weight else "[regularizers.params]")
        lines += params
    return "\n".join(lines)
