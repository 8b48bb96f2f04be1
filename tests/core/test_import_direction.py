"""Import direction between the layers, read from the source with ``ast`` (nothing is imported).

- ``specmatch.core`` (recipes, schema, registry, plugin loading) imports no ``specmatch.engine``,
  ``specmatch.plugins`` or ``specmatch.cli``;
- the built-in plugins (``specmatch.plugins``) import core and the model libraries, never ``specmatch.engine``
  or ``specmatch.cli``: they are written like third-party plugins;
- the built-in regularizers (``specmatch.regularizers``) follow the plugins' rule;
- the engine never imports ``specmatch.plugins`` or ``specmatch.regularizers``: it reaches components
  through the registry.

Every import counts, at module level or inside a function (lazy imports included), relative ones resolved.
"""

from __future__ import annotations

import ast
from pathlib import Path


PACKAGE = Path(__file__).resolve().parents[2] / "specmatch"

#: (importing layer, layers it must not import)
RULES = (
    ("specmatch.core", ("specmatch.engine", "specmatch.plugins", "specmatch.regularizers", "specmatch.cli")),
    ("specmatch.plugins", ("specmatch.engine", "specmatch.cli")),
    ("specmatch.regularizers", ("specmatch.engine", "specmatch.cli", "specmatch.plugins")),
    ("specmatch.engine", ("specmatch.plugins", "specmatch.regularizers")),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file; ``from a import b`` yields ``a.b`` too, since
    ``b`` may be a submodule."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base = ".".join(base_parts[: len(base_parts) - node.level + 1])
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            found.append((node.lineno, source))
            found += [(node.lineno, f"{source}.{alias.name}") for alias in node.names if alias.name != "*"]
    return found


def within(module: str, layer: str) -> bool:
    return module == layer or module.startswith(layer + ".")


def violations() -> list[str]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        for layer, forbidden in RULES:
            if not within(name, layer):
                continue
            for line, imported in imported_modules(path):
                bad = next((f for f in forbidden if within(imported, f)), None)
                if bad is not None:
                    out.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({layer}) imports {imported}")
    return sorted(set(out))


def test_the_resolver_sees_relative_lazy_and_from_imports(tmp_path, monkeypatch):
    """The checker itself: relative imports resolve, imports inside functions count."""
    fake = tmp_path / "specmatch"
    (fake / "core").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "core" / "__init__.py").write_text("")
    (fake / "core" / "x.py").write_text("from ..plugins import BUILTIN\n\ndef f():\n    import specmatch.cli\n"
                                        "    from specmatch import engine\n")
    monkeypatch.setattr(f"{__name__}.PACKAGE", fake)
    assert violations() == [
        "specmatch/core/x.py:1 (specmatch.core) imports specmatch.plugins",
        "specmatch/core/x.py:1 (specmatch.core) imports specmatch.plugins.BUILTIN",
        "specmatch/core/x.py:4 (specmatch.core) imports specmatch.cli",
        "specmatch/core/x.py:5 (specmatch.core) imports specmatch.engine",
    ]


def test_layers_import_only_downwards():
    assert violations() == []
