"""``autoencoder.init``: which weights file a fine-tuning run starts from, and its fingerprint.

The recipe may name a specmatch run folder (its trained autoencoder), a stage folder holding
``model.safetensors``, a diffusers ``AutoencoderKL`` folder (``diffusion_pytorch_model.safetensors``) or a
safetensors file. Core resolves that to one file and hashes it (the hash enters the autoencoder stage key, so a
different file retrains); the engine loads it. Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import attrs

from .errors import Problem, SpecmatchError
from .layout import MODEL_FILE, RunLayout, final_weights

#: the weights file of a diffusers ``save_pretrained`` folder
DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"
KEY = "autoencoder.init"


@attrs.frozen(kw_only=True)
class InitSource:
    """The resolved ``autoencoder.init``: the file to load, what the recipe named, and the file's sha256."""

    written: str  # the value in the recipe
    file: Path
    kind: str  # "run", "stage", "diffusers", "file"
    sha256: str

    def record(self) -> dict[str, str]:
        """What the run records about its initial weights (stage.json)."""
        return {"init": self.written, "init_file": str(self.file), "init_kind": self.kind,
                "init_sha256": self.sha256}


def resolve_path(value: str, recipe_dir: Path) -> Path:
    p = Path(value).expanduser()
    return Path(os.path.normpath(p if p.is_absolute() else recipe_dir / p))


def weights_file(value: str, recipe_dir: Path) -> tuple[Path, str]:
    """(file, kind) that ``value`` names; raises SpecmatchError saying what was expected."""
    if "\0" in value:
        raise SpecmatchError(f"{KEY}: {value!r} is not a valid path (NUL character)")
    path = resolve_path(value, recipe_dir)
    if path.is_file():
        if path.suffix != ".safetensors":
            raise SpecmatchError(f"{KEY}: {path} is not a .safetensors file; expected a safetensors file, a "
                                 f"specmatch run folder or a diffusers AutoencoderKL folder (pickled .ckpt/.bin "
                                 f"files are never loaded)")
        return path, "file"
    if path.is_dir():
        layout = RunLayout(path)
        if layout.recipe.is_file() and final_weights(layout.autoencoder).is_file():
            return final_weights(layout.autoencoder), "run"
        if final_weights(path).is_file():
            return final_weights(path), "stage"
        if (path / DIFFUSERS_WEIGHTS).is_file():
            return path / DIFFUSERS_WEIGHTS, "diffusers"
        if layout.recipe.is_file():
            raise SpecmatchError(f"{KEY}: the run folder {path} has no trained autoencoder "
                                 f"({layout.autoencoder / MODEL_FILE} is missing); finish that run first")
        raise SpecmatchError(f"{KEY}: folder {path} holds no weights: expected a specmatch run folder "
                             f"(recipe.toml and autoencoder/{MODEL_FILE}), a stage folder ({MODEL_FILE}) or a "
                             f"diffusers folder ({DIFFUSERS_WEIGHTS})")
    raise SpecmatchError(f"{KEY}: expected a safetensors file, a specmatch run folder or a diffusers "
                         f"AutoencoderKL folder; {path} does not exist")


_SHA256: dict[tuple[str, int, int], str] = {}


def sha256_of(path: Path) -> str:
    """The file's sha256, read once per process for a given (path, size, modification time): every plan of a
    study hashes the same weights files."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA256:
        with path.open("rb") as f:
            _SHA256[key] = hashlib.file_digest(f, "sha256").hexdigest()
    return _SHA256[key]


def init_source(value: str, recipe_dir: Path) -> InitSource | None:
    """The resolved init weights (None when ``value`` is empty); raises SpecmatchError when unusable."""
    if not value:
        return None
    file, kind = weights_file(value, recipe_dir)
    return InitSource(written=value, file=file, kind=kind, sha256=sha256_of(file))


def check_init(value: str, from_run: str, recipe_dir: Path, *, check_files: bool) -> list[Problem]:
    """``validate``'s checks of ``autoencoder.init``: not with from_run, and (with file checks) usable."""
    if not value:
        return []
    if from_run:
        return [Problem(KEY, "cannot be combined with autoencoder.from_run (that run's autoencoder is reused "
                             "as it is, not trained); remove one of them")]
    if not check_files:
        return []
    try:
        weights_file(value, recipe_dir)
    except SpecmatchError as exc:
        return [Problem(KEY, str(exc).removeprefix(f"{KEY}: "))]
    return []
