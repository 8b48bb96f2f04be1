"""specmatch's on-disk training state: resumable checkpoints, final weights and stage markers.

Nothing a run folder holds executes code when it is loaded: tensors are safetensors, everything else is JSON.
A checkpoint ``checkpoints/step_000000120/`` holds

* ``model-<name>.safetensors``: each trained model (unwrapped from DDP), ``ema-<i>.safetensors`` each EMA copy;
* ``optimizer-<name>.safetensors`` (state tensors, named ``<param index>.<state name>``) and
  ``optimizer-<name>.json`` (param groups and non-tensor state);
* ``scheduler-<name>.json``, and ``grad_scaler.json`` with fp16 mixed precision;
* ``rng-<rank>.safetensors``: the global torch CPU (and CUDA) RNG state of each process, written by that process,
  with Python's and numpy's in its metadata (dropout draws from the global RNG);
* ``train_state.json``: format, step, stage key and the size of every file above, written last.

The folder is written as ``.tmp_step_*`` and renamed when complete, so an interrupted save never looks like a
checkpoint. A checkpoint whose files do not match ``train_state.json`` (truncated, replaced, missing) is damaged:
resume says so in one line and tries the previous one.
"""

from __future__ import annotations

import logging
import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch

from specmatch.core.errors import SpecmatchError, WeightsError
from specmatch.core.layout import EMA_FILE, MARKER_FILE, MODEL_FILE

log = logging.getLogger(__name__)


FORMAT = "specmatch-checkpoint-1"
_STEP_DIR = re.compile(r"^step_(\d{9})$")
_NAME = re.compile(r"^[A-Za-z0-9_.]+$")


class DamagedFile(Exception):
    """A file of a checkpoint or stage that cannot be used as recorded (internal: callers turn it into a message)."""

    def __init__(self, path: Path, problem: str, partial: bool = False):
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = path, problem
        self.partial = partial  # some live state was already replaced when this was found


class CheckpointState:
    """What a stage checkpoints, by name: models (prepared or plain), EMA copies, optimizers, schedulers."""

    def __init__(self) -> None:
        self.models: dict[str, Any] = {}
        self.emas: dict[str, Any] = {}
        self.optimizers: dict[str, Any] = {}
        self.schedulers: dict[str, Any] = {}

    def add(self, kind: str, name: str, obj: Any) -> None:
        if not _NAME.match(name):
            raise ValueError(f"checkpoint name {name!r}: use letters, digits, '_' and '.'")
        table = getattr(self, kind)
        if name in table and table[name] is not obj:
            raise ValueError(f"two {kind} named {name!r} in one checkpoint")
        table[name] = obj


# -- file checks ------------------------------------------------------------------------------------------------

def safetensors_problem(path: Path) -> str | None:
    """Why ``path`` is not a complete safetensors file (None when it is). Reads only the header."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "missing"
    if size < 8:
        return f"{size} bytes: too short for a safetensors file"
    with path.open("rb") as f:
        n = int.from_bytes(f.read(8), "little")
        if n > size - 8:
            return f"not a safetensors file, or truncated (header of {n} bytes in a file of {size})"
        try:
            header = json.loads(f.read(n))
            end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            return "not a safetensors file (unreadable header)"
    if 8 + n + end != size:
        return f"truncated or padded: its header needs {8 + n + end} bytes, the file has {size}"
    return None


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


# -- disk full ----------------------------------------------------------------------------------------------------

_NO_SPACE_TEXT = ("no space left on device", "storagefull", "os error 28")
_TORCH_WRITE_FAILURE = ("unexpected pos", "basic_ios::clear", "pytorchstreamwriter failed")


@contextlib.contextmanager
def no_space_message(folder: Path, what: str, needed: int = 0) -> Iterator[None]:
    """Turn a write that ran out of disk space into a SpecmatchError naming the folder and the sizes.

    safetensors reports ENOSPC as an error whose text says so; torch's zip writer as a RuntimeError about the
    stream position, which we count as disk full only when the folder's disk is indeed (nearly) full.
    """
    try:
        yield
    except Exception as e:  # noqa: BLE001 - re-raised unless it is a failed write
        text = str(e).lower()
        no_space = (isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)) or \
            any(s in text for s in _NO_SPACE_TEXT)
        free = _free_bytes(folder)
        if not no_space and not (isinstance(e, RuntimeError) and any(s in text for s in _TORCH_WRITE_FAILURE)
                                 and free is not None and free < max(needed, 1 << 20)):
            raise
        need = f"about {_mb(needed)}" if needed else "more space"
        have = f", {_mb(free)} free there" if free is not None else ""
        raise SpecmatchError(
            f"no space left on device while writing {what} in {folder}: the save needs {need}{have}. "
            f"Free some space (or choose another --output-dir) and rerun: the run resumes from its last complete "
            f"checkpoint") from None


def _free_bytes(folder: Path) -> int | None:
    for p in (folder, *folder.parents):
        if p.exists():
            try:
                return shutil.disk_usage(p).free
            except OSError:
                return None
    return None


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


# -- checkpoints --------------------------------------------------------------------------------------------------

def _read_train_state(folder: Path) -> dict | None:
    try:
        meta = json.loads((folder / "train_state.json").read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return meta if isinstance(meta, dict) else None


def _step_dirs(folder: Path) -> list[tuple[int, Path]]:
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()]
    return sorted(found, reverse=True)


def checkpoint_candidates(folder: Path, key: str, unreadable: bool = False) -> list[Path]:
    """Checkpoints of this stage key, newest first (whether their files are intact is checked on loading).

    ``unreadable`` adds those whose train_state.json cannot be read (their key is unknown, so they may be ours).
    """
    out = []
    for _, path in _step_dirs(folder):
        meta = _read_train_state(path)
        if (meta is None and unreadable) or (meta is not None and meta.get("key") == key):
            out.append(path)
    return out


def verify_checkpoint(path: Path) -> dict:
    """The checkpoint's train_state.json, after checking every recorded file; raises DamagedFile."""
    meta = _read_train_state(path)
    if meta is None:
        raise DamagedFile(path / "train_state.json", "missing or not JSON")
    if meta.get("format") != FORMAT:
        raise DamagedFile(path, "written by an older specmatch in a pickle-based format, which is never loaded")
    files = meta.get("files")
    if not isinstance(files, dict) or not isinstance(meta.get("step"), int):
        raise DamagedFile(path / "train_state.json", "no step or file list")
    for name, size in files.items():
        file = path / name
        if "/" in name or not file.is_file():
            raise DamagedFile(file, "missing")
        if file.stat().st_size != size:
            raise DamagedFile(file, f"{file.stat().st_size} bytes, {size} were written")
        if name.endswith(".safetensors") and (problem := safetensors_problem(file)):
            raise DamagedFile(file, problem)
    return meta


def checkpoint_seconds(path: Path) -> float | None:
    """The stage's seconds up to the checkpoint ``path`` (None when its train_state.json does not say)."""
    seconds = (_read_train_state(path) or {}).get("seconds")
    return float(seconds) if isinstance(seconds, (int, float)) else None


def latest_checkpoint(folder: Path, key: str) -> Path | None:
    """The newest checkpoint of this stage key whose files are intact."""
    for path in checkpoint_candidates(folder, key):
        try:
            verify_checkpoint(path)
        except DamagedFile:
            continue
        return path
    return None


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    import random

    import numpy as np

    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors.update({f"cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    meta = {"python": json.dumps(random.getstate()),
            "numpy": json.dumps([kind, keys.tolist(), pos, has_gauss, gauss])}
    return tensors, meta


def _set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    import random

    import numpy as np

    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("cuda.")), key=lambda k: int(k[5:]))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[:torch.cuda.device_count()])
    if "python" in meta:
        version, internal, gauss = json.loads(meta["python"])
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in meta:
        kind, keys, pos, has_gauss, gauss = json.loads(meta["numpy"])
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, values = {}, {}
    for index, entries in state["state"].items():
        for name, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{name}"] = value.detach().contiguous()
            else:
                values[f"{index}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "values": values}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict, live_groups: list[dict]) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for flat, value in [*tensors.items(), *meta["values"].items()]:
        index, name = flat.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    groups = []
    for saved, live in zip(meta["param_groups"], live_groups):  # JSON has no tuples (AdamW betas)
        groups.append({k: tuple(v) if isinstance(live.get(k), tuple) else v for k, v in saved.items()})
    return {"state": state, "param_groups": groups}


@contextlib.contextmanager
def atomic_write(path: Path, needed: int = 0) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; on success it is flushed and renamed over ``path``.

    A kill or a full disk leaves ``path`` as it was (never half-written); a failed write deletes the temporary.
    """
    tmp = path.with_name(path.name + ".tmp")
    try:
        with no_space_message(path.parent, path.name, needed):
            path.parent.mkdir(parents=True, exist_ok=True)
            yield tmp
            with tmp.open("rb") as f:
                os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1))


def _fsync_folder_files(folder: Path) -> None:
    """Flush the checkpoint's files before the rename publishes them (a power cut must not leave empty files)."""
    for p in folder.iterdir():
        with p.open("rb") as f:
            os.fsync(f.fileno())


def save_checkpoint(accelerator, folder: Path, step: int, key: str, state: CheckpointState,
                    keep: int = 2, seconds: float | None = None) -> Path:
    """Write ``state`` as the checkpoint of ``step``; keep the newest ``keep`` checkpoints of this stage key.
    ``seconds``: the stage's seconds so far, kept in train_state.json for the run that resumes from it.

    The main process writes the shared (replicated) state, every process its own RNG file.
    """
    from safetensors.torch import save_file, save_model

    final = folder / f"step_{step:09d}"
    tmp = folder / f".tmp_step_{step:09d}"
    acc = accelerator
    if acc.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        with no_space_message(folder, "a checkpoint folder"):
            tmp.mkdir(parents=True)
    acc.wait_for_everyone()
    rng, rng_meta = _rng_state()
    needed = _tensor_bytes(rng.values())
    if acc.is_main_process:
        models = {f"model-{n}": acc.unwrap_model(m) for n, m in state.models.items()}
        models.update({f"ema-{n}": e.module for n, e in state.emas.items()})
        optimizers = {n: _flatten_optimizer(o.state_dict()) for n, o in state.optimizers.items()}
        needed += sum(_tensor_bytes(m.state_dict().values()) for m in models.values()) + \
            sum(_tensor_bytes(t.values()) for t, _ in optimizers.values())
    try:
        with no_space_message(folder, f"checkpoint step {step}", needed):
            save_file(rng, str(tmp / f"rng-{acc.process_index}.safetensors"), metadata=rng_meta)
    except BaseException:
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    if acc.is_main_process:
        try:
            with no_space_message(folder, f"checkpoint step {step}", needed):
                for stem, module in models.items():
                    save_model(module, str(tmp / f"{stem}.safetensors"), force_contiguous=True)
                for name, (tensors, meta) in optimizers.items():
                    save_file(tensors, str(tmp / f"optimizer-{name}.safetensors"))
                    _write_json(tmp / f"optimizer-{name}.json", meta)
                for name, sched in state.schedulers.items():
                    _write_json(tmp / f"scheduler-{name}.json", sched.state_dict())
                if acc.scaler is not None and (scaler := acc.scaler.state_dict()):  # empty before its first use
                    _write_json(tmp / "grad_scaler.json", scaler)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # frees the space; a half-written folder is never used
            raise
    acc.wait_for_everyone()
    if acc.is_main_process:
        try:
            with no_space_message(folder, f"checkpoint step {step}", needed):
                files = {p.name: p.stat().st_size for p in sorted(tmp.iterdir())}
                train_state = {"format": FORMAT, "step": step, "key": key, "files": files}
                if seconds is not None:
                    train_state["seconds"] = round(seconds, 3)
                _write_json(tmp / "train_state.json", train_state)
                _fsync_folder_files(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        # accelerate's ProjectConfiguration(total_limit=...) prunes only inside save_state, which this file replaces
        for p in checkpoint_candidates(folder, key)[keep:]:  # only this stage key: others are not ours to prune
            shutil.rmtree(p, ignore_errors=True)
    acc.wait_for_everyone()
    return final


def load_checkpoint(accelerator, path: Path, state: CheckpointState) -> int:
    """Restore ``state`` (and this process' RNG) from the checkpoint ``path``; returns its step.

    Raises DamagedFile when a file is damaged or does not fit ``state``: before changing anything, except when a
    model file passes every check and still fails to load (then a previous checkpoint, if any, overwrites it).
    """
    from safetensors import safe_open
    from safetensors.torch import load_file, load_model

    meta = verify_checkpoint(path)
    expected = [f"model-{n}.safetensors" for n in state.models] + [f"ema-{n}.safetensors" for n in state.emas]
    expected += [f"optimizer-{n}.{ext}" for n in state.optimizers for ext in ("safetensors", "json")]
    expected += [f"scheduler-{n}.json" for n in state.schedulers]
    for name in expected:
        if name not in meta["files"]:
            raise DamagedFile(path / name, "missing (the checkpoint was written for other models)")

    def read_json(name: str) -> Any:
        try:
            return json.loads((path / name).read_text())
        except (OSError, ValueError, UnicodeDecodeError) as e:
            raise DamagedFile(path / name, f"not JSON ({e})") from None

    optimizers = {}
    for name, opt in state.optimizers.items():
        try:
            tensors = load_file(str(path / f"optimizer-{name}.safetensors"))
        except Exception as e:  # noqa: BLE001 - any unreadable file is a damaged checkpoint
            raise DamagedFile(path / f"optimizer-{name}.safetensors", str(e)) from None
        optimizers[name] = _unflatten_optimizer(tensors, read_json(f"optimizer-{name}.json"), opt.param_groups)
    schedulers = {n: read_json(f"scheduler-{n}.json") for n in state.schedulers}
    scaler = read_json("grad_scaler.json") if accelerator.scaler is not None and \
        "grad_scaler.json" in meta["files"] else None
    rng_file = path / f"rng-{accelerator.process_index}.safetensors"
    rng = None
    if rng_file.name in meta["files"]:  # absent when resuming with more processes than were saved
        try:
            with safe_open(str(rng_file), "pt") as f:
                rng = ({k: f.get_tensor(k) for k in f.keys()}, f.metadata() or {})
        except Exception as e:  # noqa: BLE001
            raise DamagedFile(rng_file, str(e)) from None

    # everything above was read without touching the live objects; from here on the state is replaced
    targets = {f"model-{n}": accelerator.unwrap_model(m) for n, m in state.models.items()}
    targets.update({f"ema-{n}": e.module for n, e in state.emas.items()})
    for stem, module in targets.items():
        try:
            load_model(module, str(path / f"{stem}.safetensors"), strict=True, device="cpu")
        except Exception as e:  # noqa: BLE001
            raise DamagedFile(path / f"{stem}.safetensors", str(e).splitlines()[0], partial=True) from None
    for name, opt in state.optimizers.items():
        opt.load_state_dict(optimizers[name])
    for name, sched in state.schedulers.items():
        sched.load_state_dict(schedulers[name])
    if scaler is not None:
        accelerator.scaler.load_state_dict(scaler)
    if rng is not None:
        _set_rng_state(*rng)
    return int(meta["step"])


# -- final weights and stage markers -----------------------------------------------------------------------------

def save_weights(module, path: Path, metadata: dict[str, str] | None = None) -> None:
    """Final weights as safetensors, written atomically (shared tensors are cloned first)."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}
    with atomic_write(path, _tensor_bytes(state.values())) as tmp:
        save_file(state, str(tmp), metadata=metadata or {})


def load_weights(module, path: Path) -> None:
    """Load safetensors weights into ``module``; a missing, damaged or mismatching file is a WeightsError."""
    from safetensors.torch import load_file

    problem = safetensors_problem(path)
    if problem:
        raise WeightsError(f"cannot load weights from {path}: {problem}. Delete the file to retrain its stage "
                           f"(or rerun the run that wrote it)")
    try:
        state = load_file(str(path), device="cpu")
    except Exception as e:  # noqa: BLE001 - the header looked fine but the content does not
        raise WeightsError(f"cannot load weights from {path}: {e}") from None
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})" for k, v in expected.items()
              if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        parts = [f"{label}: {', '.join(items[:3])}{' ...' if len(items) > 3 else ''}"
                 for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)) if items]
        raise WeightsError(f"weights in {path} do not fit the {type(module).__name__} the recipe builds "
                           f"({'; '.join(parts)}): the recipe and the file describe different models")
    module.load_state_dict(state)


def write_json_atomic(path: Path, data: Any) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))


_STAGE_FILES = (MODEL_FILE, EMA_FILE)  # what a training stage leaves, see final_weights


def _read_marker(folder: Path) -> dict | None:
    """``folder/stage.json`` as a dict (None: missing, unreadable or not an object)."""
    try:
        meta = json.loads((folder / MARKER_FILE).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return meta if isinstance(meta, dict) else None


def stage_complete(folder: Path, key: str) -> bool:
    """True when ``folder/stage.json`` has this key and every file it recorded is still as it was written.

    A damaged file (truncated, replaced, missing) makes the stage incomplete, so the engine resumes or retrains
    it instead of failing on every rerun. Markers written before files were recorded are checked against the
    stage's weight files.
    """
    meta = _read_marker(folder)
    if meta is None or meta.get("key") != key:
        return False
    files = meta.get("files")
    try:
        if not isinstance(files, dict):
            for name in _STAGE_FILES:
                if (folder / name).exists() and (problem := safetensors_problem(folder / name)):
                    raise DamagedFile(folder / name, problem)
            return True
        for rel, rec in files.items():
            path = folder / rel
            if not path.is_file():
                raise DamagedFile(path, "missing")
            if path.stat().st_size != rec.get("bytes"):
                raise DamagedFile(path, f"{path.stat().st_size} bytes, {rec.get('bytes')} were written")
            if path.suffix == ".safetensors" and (problem := safetensors_problem(path)):
                raise DamagedFile(path, problem)
            if rec.get("sha256") and _sha256(path) != rec["sha256"]:
                raise DamagedFile(path, "content changed since the stage completed (sha256 differs)")
    except DamagedFile as e:
        log.warning(f"[{folder.name}] {e.path} is damaged ({e.problem}): the stage is not complete and runs again")
        return False
    return True


def mark_stage_complete(folder: Path, key: str, extra: dict | None = None, files: list[Path] | None = None) -> None:
    """Write ``folder/stage.json`` recording ``files`` (default: the stage's weight files) with size and sha256."""
    if files is None:
        files = [folder / n for n in _STAGE_FILES if (folder / n).exists()]
    record = {os.path.relpath(p, folder): {"bytes": Path(p).stat().st_size, "sha256": _sha256(Path(p))}
              for p in files}
    write_json_atomic(folder / MARKER_FILE, {"key": key, **(extra or {}), "files": record})


def stage_seconds(folder: Path) -> float | None:
    """The seconds ``folder/stage.json`` recorded for its stage (None when it did not)."""
    seconds = (_read_marker(folder) or {}).get("seconds")
    return float(seconds) if isinstance(seconds, (int, float)) else None


def record_stage_seconds(folder: Path, seconds: float) -> None:
    """Add the stage's seconds to an existing ``folder/stage.json`` (which stays valid for stage_complete)."""
    meta = _read_marker(folder)
    if meta is not None:
        write_json_atomic(folder / MARKER_FILE, {**meta, "seconds": round(seconds, 1)})
