"""Where the app may look for checkpoints, and what it reads from one (no Streamlit here).

Allowed roots (a typed path must resolve, symlinks followed, to a directory inside one):

* ``VITRM_CHECKPOINTS`` if set, else the repository's ``checkpoints/``; its sub-directories
  are offered in the sidebar;
* every directory in ``VITRM_CHECKPOINT_ROOTS`` (separated by ``os.pathsep``, ":" on Linux).

A relative typed path is taken relative to the repository root. Only ``config.json``,
``model.safetensors`` (through ``vitrm.load``), ``metrics.json``, ``predictions.csv.gz`` (or ``.csv``),
``train_log.csv``, ``train_config.json`` (and the stage folders' logs), ``ood.json`` with ``ood.safetensors``
and ``projection.safetensors`` are ever read, all here (the weights in ``app/cache.py``) and all through the
library's one gate (``vitrm.sidefiles``) with one ``sidefiles.Budget`` per checkpoint (``CheckpointFiles``): each
file bounded and checked, all of them together bounded, none a link out of the checkpoint.

A data folder named by a checkpoint's side files (``"data": "imagefolder:..."``) is used only when it lies
under an allowed dataset root (``data_root``): the repository's ``../shared/datasets`` and ``.data``, and
every directory in ``VITRM_DATA_ROOTS``.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

import vitrm
from vitrm import (
    CONFIG_FILE as CONFIG,
    WEIGHTS_FILE as WEIGHTS,
    CheckpointError,
    averaged_runs,
    earlier_stages,
    ood,
    paths,
    projection,
    sidefiles,
)

REPO = Path(__file__).resolve().parents[1]
TRAIN_LOG = "train_log.csv"
TRAIN_CONFIG = "train_config.json"


def checkpoints_root() -> Path:
    return Path(os.environ.get("VITRM_CHECKPOINTS") or REPO / "checkpoints").resolve()


def allowed_roots() -> list[Path]:
    extra = [Path(p).resolve() for p in os.environ.get("VITRM_CHECKPOINT_ROOTS", "").split(os.pathsep) if p.strip()]
    return [checkpoints_root()] + extra


def is_checkpoint(path: Path) -> bool:
    return (path / CONFIG).is_file() and (path / WEIGHTS).is_file()


def discover() -> list[Path]:
    """Checkpoint directories directly under the main root, by name, resolved like typed ones.

    An entry that is a symlink is listed as the directory it resolves to, and only when that lies
    under an allowed root: a link pointing elsewhere is left out, as typing its target would be.
    """
    root = checkpoints_root()
    if not root.is_dir():
        return []
    roots = allowed_roots()
    found = set()
    for entry in root.iterdir():
        if entry.name.startswith(".") or not paths.is_inside(entry, roots):
            continue
        target = paths.resolve(entry)
        if target.is_dir() and is_checkpoint(target):
            found.add(target)
    return sorted(found, key=lambda p: (p.name, str(p)))


def resolve_typed_path(text: str) -> Path:
    """A directory path typed by a user -> the checkpoint directory, or CheckpointError saying why not."""
    text = text.strip()
    if not text:
        raise CheckpointError("type a checkpoint directory path")
    try:
        raw = Path(paths.check_text(text)).expanduser()
        path = paths.resolve(raw if raw.is_absolute() else REPO / raw)
    except (paths.UnsafePathError, RuntimeError) as e:       # RuntimeError: "~nobody" has no home
        raise CheckpointError(str(e) if isinstance(e, paths.UnsafePathError)
                              else f"{paths.shown(text)}: {e}") from None
    roots = allowed_roots()
    if not paths.is_inside(path, roots):
        listed = ", ".join(str(r) for r in roots)
        raise CheckpointError(f"{paths.shown(text)}: outside the allowed checkpoint roots ({listed}). "
                              "Add a root to VITRM_CHECKPOINT_ROOTS to allow it.")
    if not path.is_dir():
        raise CheckpointError(f"{paths.shown(text)}: no such directory")
    return path


def weights_mtime(path: Path) -> float:
    """Changes whenever training writes a new epoch: the cache key that makes the app reload."""
    try:
        return (path / WEIGHTS).stat().st_mtime
    except OSError:
        return 0.0


def files_mtime(path: Path) -> float:
    """Latest change to any file the app reads from the directory."""
    times = [0.0]
    for name in (CONFIG, WEIGHTS, "metrics.json", "predictions.csv.gz", "predictions.csv", TRAIN_LOG, TRAIN_CONFIG,
                 ood.FACTS, ood.WEIGHTS, projection.FILE):
        try:
            times.append((path / name).stat().st_mtime)
        except OSError:
            pass
    return max(times)


@dataclass
class CheckpointFiles:
    """The measured figures and logs beside a checkpoint's weights; None where a file is absent.

    The per-image table, the out-of-distribution rule and the map of answers are read on first use, not with the
    rest: the table is the one large file (10,000 rows), and a page that shows several models needs it for one at
    most (the Explore page: the model in focus). A fresh server's first page read the flagship's beside the focus
    model's for nothing. Whenever each is read, it is charged to the one budget of the checkpoint (``_budget``).
    """

    path: Path
    config: vitrm.ModelConfig
    metrics: dict | None
    train_log: pd.DataFrame | None          # the training history: earlier stages' and averaged runs' logs too
    train_config: dict | None
    _problems: list[str]
    _budget: sidefiles.Budget | None = field(default=None, repr=False)
    _own_log: pd.DataFrame | None = field(default=None, repr=False)     # its own train_log.csv alone
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _later: dict = field(default_factory=dict, repr=False)      # the files read on first use, by name

    @property
    def name(self) -> str:
        return self.path.name

    def _once(self, name: str, read):
        """``read()`` the first time ``name`` is asked for, by whichever session asks first; shared after that."""
        with self._lock:          # twenty sessions opening one model read each file once
            if name not in self._later:
                self._later[name] = read()
            return self._later[name]

    @property
    def predictions(self) -> pd.DataFrame | None:
        """predictions.csv.gz (or .csv), validated against the config and metrics.json; read once, shared by
        every session (a resource: never modified)."""
        steps = len(self.metrics["top1_by_step"]) if self.metrics else None
        return self._once("predictions", lambda: _read(sidefiles.read_predictions, self.path, self._problems,
                                                       self.config.num_classes, steps, self._budget,
                                                       vitrm.steps.max_steps(self.config)))

    @property
    def ood_rule(self) -> ood.OODRule | str | None:
        """The out-of-distribution rule (``ood.json`` and ``ood.safetensors``, ``vitrm.ood``); None when the
        checkpoint has none, the problem as a sentence when its files are damaged or pass the budget."""
        return self._once("ood", lambda: _or_problem(ood.load, self.path, self._budget, self.config))

    @property
    def projection(self) -> vitrm.projection.Projection | str | None:
        """The map of answers over the steps (``projection.safetensors``, ``vitrm.projection``); None when the
        checkpoint has none, the problem as a sentence when the file is damaged or passes the budget."""
        return self._once("projection", lambda: _or_problem(sidefiles.read_projection, self.path,
                                                            self.config.num_classes, self._budget))

    @property
    def problems(self) -> list[str]:
        """Files present but unreadable, said plainly (the per-image table read first, to have its say)."""
        _ = self.predictions
        return list(self._problems)

    def point_files(self) -> vitrm.PointFiles:
        """What the trained-N sweep and the cost chart take from this checkpoint (``vitrm.read_point_files``), from
        this one reading of its files: nothing is read again, so nothing is read past its one budget. Their own
        reads once went round the budget, each file under its own cap alone."""
        log = self._own_log
        files = (("accuracy", "metrics.json"), ("training budget", TRAIN_LOG))
        problems = tuple((what, problem) for what, name in files
                         for problem in self._problems if problem.startswith(f"{self.path / name}:"))
        return vitrm.PointFiles(config=self.config, metrics=self.metrics, epochs=None if log is None else len(log),
                                problems=problems)


def _read(reader, path: Path, problems: list[str], *args):
    """One side file through its validator (vitrm.sidefiles); a damaged one becomes a problem and None."""
    try:
        return reader(path, *args)
    except CheckpointError as e:
        problems.append(str(e))
        return None


def _or_problem(reader, *args):
    """A file read on first use: what ``reader`` returns, or its CheckpointError as a sentence for the view."""
    try:
        return reader(*args)
    except CheckpointError as e:
        return str(e)


def _training_history(log: pd.DataFrame | None, path: Path, problems: list[str],
                      budget: sidefiles.Budget) -> pd.DataFrame | None:
    """train_log.csv (``log``, already read), preceded by the earlier stages' logs when the run was trained in stages.

    A staged run keeps each earlier stage's log in ``stageK/`` (``vitrm.checkpoint.earlier_stages``);
    they are shown as one history, each stage's epochs numbered on from the one before, with a
    ``stage`` column so the views can mark the restarts. When the shipped weights average several
    runs of the last stage (``vitrm.checkpoint.averaged_runs``), the others' logs follow over the
    same epochs, told apart by a ``run`` column ("" for the main line, "5b", ... for the others).
    """
    if log is None:
        return None
    try:
        stages, runs = earlier_stages(path), averaged_runs(path)
    except CheckpointError as e:                # too many stage folders, or one that leads out: this run alone
        problems.append(str(e))
        return log
    logs = [_read(sidefiles.read_train_log, stage, problems, budget) for stage in stages] + [log]
    siblings = {run.name.removeprefix("stage"): _read(sidefiles.read_train_log, run, problems, budget)
                for run in runs}
    if (len(logs) == 1 and not siblings) or any(part is None or part.empty for part in logs + list(siblings.values())):
        return log
    offset, parts = 0, []
    for number, part in enumerate(logs, start=1):
        parts.append(part.assign(epoch=part["epoch"] + offset, stage=number, run=""))
        offset += int(part["epoch"].max())
    last_offset = offset - int(log["epoch"].max())
    parts += [part.assign(epoch=part["epoch"] + last_offset, stage=len(logs), run=run)
              for run, part in siblings.items()]
    return pd.concat(parts, ignore_index=True)


def read_files(path: Path) -> CheckpointFiles:
    """Everything but the weights. Raises CheckpointError only when config.json itself is bad; a damaged
    side file is left out (None) with its problem said, so it costs only the views that need it."""
    budget = sidefiles.Budget(path)
    config = vitrm.read_config(path, budget)
    problems: list[str] = []
    metrics = _read(sidefiles.read_metrics, path, problems, config.num_classes, budget, vitrm.steps.max_steps(config))
    own_log = _read(sidefiles.read_train_log, path, problems, budget)
    return CheckpointFiles(path=path, config=config, metrics=metrics,
                           train_log=_training_history(own_log, path, problems, budget),
                           train_config=_read(sidefiles.read_train_config, path, problems, budget),
                           _problems=problems, _budget=budget, _own_log=own_log)


def data_roots() -> list[Path]:
    """Where a checkpoint's side files may point the app for images: the shared datasets beside the repository,
    its ``.data``, and every directory in ``VITRM_DATA_ROOTS`` (separated by ``os.pathsep``)."""
    extra = [Path(p) for p in os.environ.get("VITRM_DATA_ROOTS", "").split(os.pathsep) if p.strip()]
    return [REPO.parent / "shared" / "datasets", REPO / ".data"] + extra


def data_root_problem(spec: str | None) -> str | None:
    """Why the imagefolder named by a data spec is not used (None when it is, or when the spec names none).

    The spec comes from a checkpoint's metrics.json or train_config.json, a stranger's text: ``imagefolder:/``
    would make ``?dataset=`` links and the dataset page's galleries show any image on the server. So the folder
    must resolve, symlinks followed, inside one of ``data_roots()``."""
    if not spec or not spec.startswith("imagefolder:"):
        return None
    try:
        raw = Path(paths.check_text(spec.split(":", 1)[1]))
        root = raw if raw.is_absolute() else REPO / raw
        if not paths.is_inside(root, data_roots()):
            listed = ", ".join(str(r) for r in data_roots())
            return (f"the data folder {paths.shown(str(raw))} named by the checkpoint lies outside the allowed "
                    f"dataset roots ({listed}); add a root to VITRM_DATA_ROOTS to allow it")
        if not root.is_dir():
            return f"the data folder {paths.shown(str(raw))} named by the checkpoint is absent"
    except (paths.UnsafePathError, OSError) as e:
        return f"the data folder named by the checkpoint cannot be used ({e})"
    return None


def data_root(spec: str | None) -> Path | None:
    """The imagefolder directory named by a data spec, relative paths taken from the repo root; None when the
    spec names none, or one that ``data_root_problem`` refuses."""
    if not spec or not spec.startswith("imagefolder:") or data_root_problem(spec) is not None:
        return None
    raw = Path(spec.split(":", 1)[1])
    return raw if raw.is_absolute() else REPO / raw
