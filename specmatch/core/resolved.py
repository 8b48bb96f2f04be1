"""The validated recipe: its schema records, each component's spec and params, and the hashes stages key on."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import attrs

from .schema import Recipe
from .specs import ComponentSpec
from .structure import unstructure


@attrs.frozen(kw_only=True)
class ResolvedComponent:
    """One component table of a recipe, with its spec and structured params."""

    path: str  # e.g. "regularizers[1]"
    kind: str
    config: Any  # the table's schema record (RegularizerConfig, ComponentConfig, ...)
    spec: ComponentSpec
    params: Any  # instance of the spec's params class (or None)
    source: str = ""  # the recipe file, for errors raised while building


@attrs.frozen(kw_only=True)
class ResolvedRecipe:
    source: Path
    recipe: Recipe
    components: dict[str, ResolvedComponent]
    warnings: tuple[str, ...] = ()
    from_run_recipe: dict[str, Any] | None = None  # the resolved recipe of autoencoder.from_run

    @property
    def recipe_dir(self) -> Path:
        return self.source.parent

    def component(self, path: str) -> ResolvedComponent | None:
        return self.components.get(path)

    def array(self, table: str) -> list[ResolvedComponent]:
        """The components of an array table (``[[regularizers]]``), in recipe order."""
        paths = (f"{table}[{i}]" for i in range(len(getattr(self.recipe, table))))
        return [self.components[p] for p in paths if p in self.components]

    def regularizers(self) -> list[ResolvedComponent]:
        return self.array("regularizers")

    def denoiser_regularizers(self) -> list[ResolvedComponent]:
        return self.array("denoiser_regularizers")

    def autoencoder_uses_teacher(self) -> bool:
        """True when a regularizer aligns the latent with the ``[alignment]`` teacher (VA-VAE's VF loss)."""
        return any("features" in comp.spec.needs for comp in self.regularizers())

    def denoiser_uses_teacher(self) -> bool:
        """True when a denoiser regularizer reads the ``[alignment]`` teacher's features (REPA)."""
        return self.recipe.denoiser is not None and any(
            "features" in comp.spec.needs for comp in self.denoiser_regularizers())

    def to_dict(self) -> dict[str, Any]:
        """The fully resolved recipe: every default filled in, every params table complete."""
        data = unstructure(self.recipe)
        for path, comp in self.components.items():
            table = get_path(data, path)
            if table is None:
                continue
            table["name"] = comp.spec.name  # canonical: an alias ('vf') and its name ('vavae') hash alike
            if comp.params is not None:
                table["params"] = unstructure(comp.params)
        data.pop("plugins", None) if not self.recipe.plugins.files else None
        return data

    def section_hash(self, *keys: str, unused: tuple[str, ...] = ()) -> str:
        """A stable hash of some top-level tables (``()`` = the whole recipe): what a stage depends on.

        Tables in ``unused`` hash as if absent (e.g. a teacher that only the denoiser uses).
        """
        data = self.to_dict()
        part = data if not keys else {k: None if k in unused else data.get(k) for k in keys}
        text = json.dumps(part, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_toml(self, header: str = "") -> str:
        import tomli_w

        return header + tomli_w.dumps(self.to_dict())


def get_path(data: dict[str, Any], path: str) -> Any:
    m = re.fullmatch(r"([a-z_]+)(?:\[(\d+)\])?", path)
    if not m:
        return None
    node = data.get(m.group(1))
    if m.group(2) is not None:
        node = node[int(m.group(2))] if isinstance(node, list) and int(m.group(2)) < len(node) else None
    return node
