"""The study file: which recipes, seeds and denoiser recipes a study compares, read into attrs records.

A study file is TOML::

    name = "cpu-f2d4-seeds"
    seeds = [0, 1, 2]
    baseline = "sdvae"
    overrides = ["autoencoder.params.preset='micro-f2d4'"]   # every recipe, every cell

    [recipes.sdvae]
    file = "../cpu/sdvae.toml"             # relative to the study file
    [recipes.esm-weak]
    base = "esm"                           # another label (or a recipe file) ...
    overrides = ["regularizers[0].weight=0.001"]   # ... plus these overrides: a named variant

    [denoisers.sit]                          # optional: train this denoiser on every autoencoder
    file = "../cpu/denoiser-sit.toml"      # its denoiser-side tables replace the recipe's
    overrides = ["train.denoiser.steps=200"]

    [slurm]                                # optional: defaults of `--executor slurm`
    partition = "gpu"

Structuring uses core's converter (:mod:`specmatch.core.structure`), so unknown keys, wrong types and ranges
are reported with their key paths, every problem at once. Resolving labels into recipe files and override
lists happens here too; resolving every cell's recipe is :mod:`specmatch.study.matrix`'s job.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import attrs

from specmatch.core.errors import Problem, SpecmatchError
from specmatch.core.overrides import parse_override
from specmatch.core.specs import param
from specmatch.core.structure import check_field, resolve_types_deep, structure
from specmatch.core.toml_io import read_toml

#: labels name folders (cells/<label>/...) and appear in cell ids ("sdvae/seed-0/sit")
LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
#: recipe tables a denoiser file replaces; [[denoiser_regularizers]] is emptied when the file has none
_BARE_KEY = re.compile(r"^[A-Za-z0-9_\-]+$")
DENOISER_TABLES = ("denoiser", "objective", "sampler", "denoiser_regularizers", "evaluation")


class StudyError(SpecmatchError):
    """A study file is not valid; holds every problem found (exit code 2, as an invalid recipe)."""

    exit_code = 2

    def __init__(self, source: str, problems: list[Problem]):
        self.source = source
        self.problems = list(problems)
        n = len(self.problems)
        lines = [f"{source} is not a valid study ({n} problem{'s' if n != 1 else ''})"]
        lines += [f"  {source}: {p.render()}" for p in self.problems]
        super().__init__("\n".join(lines))


@attrs.frozen(kw_only=True)
class RecipeEntry:
    file: str = param("", doc="a recipe file, relative to the study file (give file or base)")
    base: str = param("", doc="another label of this study, or a recipe file, that this variant starts from")
    overrides: tuple[str, ...] = param((), doc="-o KEY=VALUE overrides applied after the base's")


@attrs.frozen(kw_only=True)
class DenoiserEntry:
    file: str = param("", doc="a recipe file whose denoiser-side tables ([denoiser], [objective], [sampler], "
                              "[train.denoiser], [[denoiser_regularizers]], [evaluation]) replace the recipe's")
    overrides: tuple[str, ...] = param((), doc="-o KEY=VALUE overrides applied after the file's tables")


@attrs.frozen(kw_only=True)
class SlurmConfig:
    partition: str = param("", doc="Slurm partition (--slurm-partition overrides it)")
    gpus: int = param(0, doc="GPUs per cell (--slurm-gpus)", ge=0, le=64)
    time: int = param(240, doc="time limit of one cell in minutes (--slurm-time)", ge=1)
    cpus: int = param(4, doc="CPU cores per cell", ge=1, le=1024)
    mem_gb: int = param(0, doc="memory per cell in GB (0: the partition's default)", ge=0)


@attrs.frozen(kw_only=True)
class StudyFile:
    name: str = param(doc="the study's name: the report's title and the default output folder runs/<name>")
    seeds: tuple[int, ...] = param(doc="run.seed of each cell, e.g. [0, 1, 2]", ge=0, lt=2**32)
    baseline: str = param("", doc="the recipe label (or label/denoiser) the others are compared with")
    overrides: tuple[str, ...] = param((), doc="-o overrides applied to every recipe before its own")
    analyze_images: int = param(0, doc="after each cell, `specmatch analyze RUN --images N` (analysis.json: band "
                                       "spectra, delta-target KLs, low-pass fidelity); 0: not run", ge=0)
    analyze_diagnostics: tuple[str, ...] = param(
        (), doc="with analyze_images: the diagnostics `specmatch analyze` runs (--diagnostic NAME each; \"all\" = "
                "every registered one); empty: the recipe's [evaluation] diagnostics")
    reference_images: int = param(
        0, doc="the generation reference: `specmatch stats` of this many training images (seed 0), computed once "
               "per data table and evaluation preprocessing into DIR/reference/ and given to every cell as "
               "evaluation.reference; 0: each cell draws its own reference as its recipe says", ge=0)
    recipes: dict[str, RecipeEntry] = param(doc="[recipes.<label>] tables")
    denoisers: dict[str, DenoiserEntry] = param(factory=dict, doc="[denoisers.<label>] tables")
    slurm: SlurmConfig = param(factory=SlurmConfig, doc="defaults of --executor slurm")


@attrs.frozen(kw_only=True)
class RecipeSource:
    """A recipe label resolved: the file core loads and the overrides that make the variant."""

    label: str
    file: Path
    overrides: tuple[str, ...]


@attrs.frozen(kw_only=True)
class Study:
    """A validated study file with every label resolved."""

    name: str
    source: Path
    seeds: tuple[int, ...]
    baseline: str
    overrides: tuple[str, ...]
    analyze_images: int
    analyze_diagnostics: tuple[str, ...]
    reference_images: int
    recipes: dict[str, RecipeSource]
    denoisers: dict[str, "DenoiserSource"]
    slurm: SlurmConfig


def toml_inline(value: Any) -> str:
    """A value as one TOML literal (inline tables and arrays), the form ``-o key=value`` accepts."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") \
            .replace("\t", "\\t").replace("\r", "\\r") + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_inline(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{k if _BARE_KEY.match(str(k)) else toml_inline(str(k))} = {toml_inline(v)}"
                          for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _check_overrides(texts: tuple[str, ...], where: str) -> list[Problem]:
    problems = []
    for i, text in enumerate(texts):
        try:
            parse_override(text)
        except ValueError as exc:
            problems.append(Problem(f"{where}[{i}]", str(exc)))
    return problems


def _resolve_recipes(entries: dict[str, RecipeEntry], folder: Path,
                     labels: list[str]) -> tuple[dict[str, RecipeSource], list[Problem]]:
    """Follow ``base`` chains (labels or files) to a file and the concatenated overrides. ``labels``: every
    label written, including those whose entry did not structure (a variant of one is left unresolved,
    its own problem already reported)."""
    problems: list[Problem] = []
    out: dict[str, RecipeSource] = {}

    def follow(label: str, chain: tuple[str, ...]) -> RecipeSource | None:
        if label in out:
            return out[label]
        if label not in entries:  # written, but its entry did not structure
            return None
        entry, where = entries[label], f"recipes.{label}"
        if bool(entry.file) == bool(entry.base):
            problems.append(Problem(where, "give exactly one of file (a recipe file) or base (a label or a "
                                           "file, plus overrides)"))
            return None
        if entry.base and entry.base in labels:
            if entry.base in chain:
                problems.append(Problem(f"{where}.base", "circular base: " + " -> ".join((*chain, entry.base))))
                return None
            parent = follow(entry.base, (*chain, entry.base))
            if parent is None:
                return None
            source = RecipeSource(label=label, file=parent.file, overrides=parent.overrides + entry.overrides)
        else:
            ref = entry.file or entry.base
            file = (folder / ref).expanduser()
            if not file.is_file():
                key = "file" if entry.file else "base"
                hint = "" if entry.file else f" (and not a label: {', '.join(labels)})"
                problems.append(Problem(f"{where}.{key}", f"file {file} does not exist{hint}"))
                return None
            source = RecipeSource(label=label, file=file, overrides=entry.overrides)
        out[label] = source
        return source

    for label in entries:
        follow(label, (label,))
    return out, problems


@attrs.frozen(kw_only=True)
class DenoiserSource:
    """A denoiser label resolved: the denoiser-side tables of its file (if any) and its overrides."""

    label: str
    file: Path | None
    tables: dict[str, Any]  # as read (extends applied); schema paths relative to the file's folder
    overrides: tuple[str, ...]

    def overrides_for(self, recipe_file: Path) -> tuple[str, ...]:
        """Overrides that put this denoiser in place of ``recipe_file``'s: one per table, then the entry's own.

        An override's relative path is read against the recipe's folder, so paths the denoiser file wrote are
        re-expressed relative to it first.
        """
        if self.file is None:
            return self.overrides
        import copy

        from specmatch.core.recipe_paths import rebase_schema_paths

        raw = copy.deepcopy(self.tables)
        rebase_schema_paths(raw, {(t,): self.file.parent.resolve() for t in raw}, recipe_file.parent.resolve())
        texts = [f"{t}={toml_inline(raw[t])}" for t in DENOISER_TABLES if t in raw]
        if "denoiser_regularizers" not in raw:
            texts.append("denoiser_regularizers=[]")
        train_denoiser = (raw.get("train") or {}).get("denoiser")
        if isinstance(train_denoiser, dict):
            texts.append(f"train.denoiser={toml_inline(train_denoiser)}")
        return tuple(texts) + self.overrides


def _resolve_denoiser(label: str, entry: DenoiserEntry, folder: Path) -> tuple[DenoiserSource | None, list[Problem]]:
    where = f"denoisers.{label}"
    if not entry.file:
        return DenoiserSource(label=label, file=None, tables={}, overrides=entry.overrides), []
    from specmatch.core.recipe import load_raw_with_origins

    file = (folder / entry.file).expanduser()
    if not file.is_file():
        return None, [Problem(f"{where}.file", f"file {file} does not exist")]
    raw, _, problems = load_raw_with_origins(file)
    if raw is None or problems:
        return None, [Problem(f"{where}.file", f"{file}: {p.render()}") for p in problems]
    if "denoiser" not in raw:
        return None, [Problem(f"{where}.file", f"{file} has no [denoiser] table")]
    tables = {t: raw[t] for t in (*DENOISER_TABLES, "train") if t in raw}
    if "train" in tables:
        tables["train"] = {k: v for k, v in tables["train"].items() if k == "denoiser"}
    return DenoiserSource(label=label, file=file, tables=tables, overrides=entry.overrides), []


def is_study_file(path: Path) -> bool:
    """A TOML file with top-level ``seeds`` and ``recipes`` (a recipe has neither), so ``validate`` can take both."""
    if path.suffix != ".toml" or not path.is_file():
        return False
    data, _ = read_toml(path)
    return isinstance(data, dict) and "seeds" in data and "recipes" in data


def _structure_study(raw: dict[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    """Structure the top-level keys one by one, and each ``[recipes.<label>]`` and ``[denoisers.<label>]``
    entry on its own (as core structures a recipe's tables), so one bad key does not hide the others' problems.

    Returns the values: each key that structured, a key not written at its default, no entry for a key that
    did not structure (a recipes or denoisers table keeps its good entries); and the problems.
    """
    resolve_types_deep(StudyFile)
    fields = {f.name: f for f in attrs.fields(StudyFile)}
    problems = [Problem(key, f"unexpected key {key!r} (allowed: {', '.join(fields)})")
                for key in raw if key not in fields]
    entry_types = {"recipes": RecipeEntry, "denoisers": DenoiserEntry}
    values: dict[str, Any] = {}
    for name, field in fields.items():
        if name not in raw:
            if field.default is attrs.NOTHING:
                problems.append(Problem(name, "required key is missing"))
            else:
                default = field.default
                values[name] = default.factory() if isinstance(default, attrs.Factory) else default
            continue
        if name in entry_types and isinstance(raw[name], dict):
            entries = {}
            for label, table in raw[name].items():
                entry, entry_problems = structure(table, entry_types[name], f"{name}.{label}")
                problems += entry_problems
                if entry is not None and not entry_problems:
                    entries[label] = entry
            values[name] = entries
            continue
        value, field_problems = structure(raw[name], field.type, name)
        if value is not None and not field_problems:
            field_problems = check_field(field, value, name)
        problems += field_problems
        if value is not None and not field_problems:
            values[name] = value
    return values, problems


def load_study(path: str | Path, registry=None) -> Study:
    """Read and check a study file (not yet its cells' recipes). Raises :class:`StudyError` with every problem:
    a key that does not structure hides only the checks that need its value."""
    source = Path(path)
    raw, problems = read_toml(source)
    if raw is None:
        raise StudyError(str(source), problems)
    values, problems = _structure_study(raw)  # a value that is None below did not structure: its checks wait
    name, seeds = values.get("name"), values.get("seeds")
    recipe_entries, denoiser_entries = values.get("recipes", {}), values.get("denoisers", {})
    # labels as written, including entries that did not structure: a reference to one is not "unknown"
    recipe_labels = list(raw["recipes"]) if isinstance(raw.get("recipes"), dict) else []
    denoiser_labels = list(raw["denoisers"]) if isinstance(raw.get("denoisers"), dict) else []
    if name is not None and (not name.strip() or "/" in name or name in (".", "..")):
        problems.append(Problem("name", f"expected one folder name (no '/'); got {name!r}"))
    if seeds is not None and not seeds:
        problems.append(Problem("seeds", "expected at least one seed, e.g. seeds = [0, 1, 2]"))
    duplicates = sorted({s for s in seeds or () if seeds.count(s) > 1})
    if duplicates:
        problems.append(Problem("seeds", f"each seed once; repeated: {', '.join(map(str, duplicates))}"))
    if "recipes" in values and not recipe_labels:
        problems.append(Problem("recipes", "expected at least one [recipes.<label>] table"))
    diagnostics = values.get("analyze_diagnostics", ())
    if diagnostics and values.get("analyze_images") == 0:
        problems.append(Problem("analyze_diagnostics", "set, but analyze_images is 0 (analyze does not run); set "
                                                       "analyze_images = N"))
    problems += _check_diagnostics(diagnostics, registry)
    for table, labels in (("recipes", recipe_labels), ("denoisers", denoiser_labels)):
        for label in labels:
            if not LABEL.match(label):
                problems.append(Problem(f"{table}.{label}", "a label is one folder name: letters, digits, "
                                                            "'_', '-', '.', starting with a letter or digit"))
    problems += _check_overrides(values.get("overrides", ()), "overrides")
    for label, entry in recipe_entries.items():
        problems += _check_overrides(entry.overrides, f"recipes.{label}.overrides")
    folder = source.parent
    recipes, recipe_problems = _resolve_recipes(recipe_entries, folder, recipe_labels)
    problems += recipe_problems
    denoisers = {}
    for label, entry in denoiser_entries.items():
        problems += _check_overrides(entry.overrides, f"denoisers.{label}.overrides")
        resolved_denoiser, den_problems = _resolve_denoiser(label, entry, folder)
        problems += den_problems
        if resolved_denoiser is not None:
            denoisers[label] = resolved_denoiser
    baseline = values.get("baseline") or ""
    baseline_label, _, baseline_denoiser = baseline.partition("/")
    if baseline and "recipes" in values and (baseline_label not in recipe_labels
                                             or (baseline_denoiser and baseline_denoiser not in denoiser_labels)):
        known = ", ".join(recipe_labels) + (f"; denoisers: {', '.join(denoiser_labels)}" if denoiser_labels else "")
        problems.append(Problem("baseline", f"expected a recipe label (or label/denoiser) of this study; got "
                                            f"{baseline!r} (labels: {known})"))
    if problems:
        raise StudyError(str(source), problems)
    parsed = StudyFile(**values)
    return Study(name=parsed.name, source=source, seeds=parsed.seeds, baseline=parsed.baseline,
                 overrides=parsed.overrides, analyze_images=parsed.analyze_images,
                 analyze_diagnostics=parsed.analyze_diagnostics, reference_images=parsed.reference_images,
                 recipes={label: recipes[label] for label in parsed.recipes}, denoisers=denoisers,
                 slurm=parsed.slurm)


def _check_diagnostics(names: tuple[str, ...], registry) -> list[Problem]:
    """Every name a registered diagnostic (or "all"), so a cell does not fail at analyze after training.
    ``registry``: the command's (with its plugin files); None: the installed plugins."""
    if not names:
        return []
    if registry is None:
        from specmatch.core.session import get_registry

        registry = get_registry()
    known = {spec.name for spec in registry.specs if spec.kind == "diagnostic"}
    return [Problem(f"analyze_diagnostics[{i}]", f"unknown diagnostic {name!r}; known: "
                                                 f"{', '.join(sorted(known))} or \"all\"")
            for i, name in enumerate(names) if name != "all" and name not in known]
