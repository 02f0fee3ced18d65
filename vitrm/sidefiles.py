"""The files beside a checkpoint's weights, read as untrusted data and validated like config.json.

    metrics.json        written by ``python -m vitrm evaluate``
    predictions.csv.gz  the per-image table, written by evaluate (older checkpoints: predictions.csv)
    train_config.json   the resolved training config, written by train
    train_log.csv       one row per epoch, written by train

A checkpoint may come from a stranger, so each file gets the same treatment as ``config.json``:
a size cap (read at most one byte past it, whatever the file system says), a nesting cap for
JSON (and no NaN, no infinity, no 5000-digit integers), and a schema: types, shapes against the
number of classes and of steps, class indices in range, required columns. Anything wrong raises
``CheckpointError`` naming the file and what is wrong, so a reader can drop just that file and
keep the rest (the app shows the message where the view that needs the file would be).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .checkpoint import METRICS, CheckpointError, predictions_file
from .steps import MAX_STEPS  # the most steps anything traces: 4,096

TRAIN_CONFIG = "train_config.json"
TRAIN_LOG = "train_log.csv"

MAX_JSON_BYTES = 16 * 2**20        # a real metrics.json of 100 classes and 256 steps is about 15 MB
MAX_CSV_BYTES = 64 * 2**20         # a real predictions.csv of 10,000 images and 64 steps is about 25 MB
                                   # (the cap holds for the CSV inside predictions.csv.gz too: no gzip bombs)
MAX_DEPTH = 8                      # metrics.json nests 4 deep (confusion_by_step); configs 3
MAX_CLASSES = 100_000              # as config.json allows
# Every file a checkpoint carries together, as the app reads them: config.json, metrics.json, train_config.json,
# train_log.csv, ood.json and projection.safetensors at their caps (16 MB each), the per-image table unpacked (64 MB),
# ood.safetensors (its size follows the model's shapes) and the stage folders share it; the weights do not count
# (the parameter budget bounds them). The shipped checkpoints carry at most a few MB (tests/test_hostile.py).
MAX_CHECKPOINT_BYTES = 160 * 2**20
MAX_NOTE_BYTES = 256 * 2**10       # NOTES.md: a page of hand-written notes


# --------------------------------------------------------------------------- reading

class Budget:
    """What all the files one checkpoint carries may cost together, read through one gate.

    Every side file of a checkpoint (config.json, the stage folders', the out-of-distribution rule's and the map
    of answers' included) is read by ``read_bounded`` with the checkpoint's one Budget: the bytes read (and, for
    gzip, unpacked) are counted against ``MAX_CHECKPOINT_BYTES``, and a file must lie, symlinks followed, inside
    ``root`` (the checkpoint). Each file's own cap still holds; the budget stops a checkpoint that carries many
    files each under its cap (the probe's 100 stage folders of 16 MB logs took 33 s and 9.4 GB).
    ``vitrm.checkpoint.earlier_stages`` bounds the stage folders themselves (``MAX_STAGES``).
    """

    def __init__(self, root: str | os.PathLike, total: int | None = None) -> None:
        self.root = Path(root)
        self.total = MAX_CHECKPOINT_BYTES if total is None else total
        self.used = 0

    def charge(self, size: int, source: str) -> None:
        self.used += size
        if self.used > self.total:
            raise CheckpointError(f"{source}: the files of this checkpoint together pass the limit of "
                                  f"{self.total // 2**20} MB, so this one is not read")

    def left(self) -> int:
        return max(self.total - self.used, 0)


def read_bounded(file: Path, cap: int, budget: Budget | None = None) -> bytes | None:
    """The bytes of ``file``, None when it is absent or not a regular file, CheckpointError when over ``cap``
    (or over what is left of ``budget``), or when it is a link that leads out of its checkpoint (``budget.root``;
    without a budget, the folder that holds it)."""
    from .paths import is_inside
    try:
        if not file.is_file():     # a FIFO would block the read forever, a device never end
            return None
        if not is_inside(file, [budget.root if budget is not None else file.parent]):
            raise CheckpointError(f"{file}: a link that leads outside the checkpoint, not followed")
        limit = cap if budget is None else min(cap, budget.left())
        with open(file, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise CheckpointError(f"{file}: cannot be read ({e.strerror or e})") from None
    if len(data) > cap:
        raise CheckpointError(f"{file}: larger than the limit of {cap // 2**20} MB for this file")
    if budget is not None:
        budget.charge(len(data), str(file))
    return data


def gunzip_bounded(data: bytes, cap: int, source: str, budget: Budget | None = None) -> bytes:
    """The content of a gzip file, every member of it, refused once it passes ``cap`` bytes (a few KB can
    inflate to gigabytes). A gzip file may hold several members one after the other, which unpack to their
    contents joined (RFC 1952; ``gzip.decompress`` and ``zcat`` read them so): a first empty member must not
    hide the table behind it."""
    import zlib
    out, rest = [], data
    size = 0
    while True:
        inflate = zlib.decompressobj(wbits=31)
        try:
            part = inflate.decompress(rest, cap + 1 - size)
        except zlib.error as e:
            raise CheckpointError(f"{source}: not a valid gzip file ({e})") from None
        size += len(part)
        out.append(part)
        if size > cap or inflate.unconsumed_tail:
            raise CheckpointError(f"{source}: unpacks to more than the limit of {cap // 2**20} MB for this file")
        if not inflate.eof:
            raise CheckpointError(f"{source}: a truncated gzip file")
        rest = inflate.unused_data
        if not rest.strip(b"\0"):         # what follows the last member: nothing, or padding
            break
    if budget is not None:
        budget.charge(size - len(data), source)     # the packed bytes are already counted
    return b"".join(out)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number this file may hold")


def parse_json(data: bytes, source: str) -> object:
    """JSON from untrusted bytes: at most MAX_DEPTH deep, finite numbers only."""
    try:
        value = json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError) as e:     # ValueError: JSONDecodeError, NaN, 5000-digit integers
        raise CheckpointError(f"{source}: not valid JSON ({_short(e)})") from None
    except RecursionError:
        raise CheckpointError(f"{source}: not valid JSON (nested too deeply)") from None
    if _depth(value) > MAX_DEPTH:
        raise CheckpointError(f"{source}: nested more than {MAX_DEPTH} levels deep")
    return value


def _depth(value: object) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if depth <= MAX_DEPTH:
                stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def _short(e: Exception) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:160]


# --------------------------------------------------------------------------- schema checks

class _Checker:
    """Small type and range checks that raise CheckpointError naming the file and the field."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, msg: str) -> CheckpointError:
        return CheckpointError(f"{self.source}: {msg}")

    def number(self, v, field: str, lo=-math.inf, hi=math.inf, integer: bool = False):
        kinds = (int,) if integer else (int, float)
        if isinstance(v, bool) or not isinstance(v, kinds) or (isinstance(v, float) and not math.isfinite(v)):
            raise self.fail(f"{field} must be {'an integer' if integer else 'a finite number'}, got {_repr(v)}")
        if not lo <= v <= hi:
            raise self.fail(f"{field}={_repr(v)} is outside {lo}..{hi}")
        return v

    def numbers(self, v, field: str, length: int | None, lo=-math.inf, hi=math.inf, integer=False,
                nullable=False) -> list:
        if not isinstance(v, list):
            raise self.fail(f"{field} must be a list, got {type(v).__name__}")
        if length is not None and len(v) != length:
            raise self.fail(f"{field} has {len(v)} entries, expected {length}")
        for i, e in enumerate(v):
            if not (nullable and e is None):
                self.number(e, f"{field}[{i}]", lo, hi, integer)
        return v

    def string(self, v, field: str, optional: bool = False) -> str | None:
        if v is None and optional:
            return None
        if not isinstance(v, str):
            raise self.fail(f"{field} must be a string, got {_repr(v)}")
        return v

    def mapping(self, v, field: str) -> dict:
        if not isinstance(v, dict):
            raise self.fail(f"{field} must be a JSON object, got {type(v).__name__}")
        return v


def _repr(v: object) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:59] + "…"


def validate_metrics(raw: object, num_classes: int, source: str = METRICS, most_steps: int = MAX_STEPS) -> dict:
    """metrics.json as written by evaluate, checked against the model's number of classes."""
    c = _Checker(source)
    m = c.mapping(raw, "the file")
    for key in ("top1_by_step", "top5_by_step", "ece_by_step", "per_class_by_step", "confusion_by_step"):
        if key not in m:
            raise c.fail(f"missing {key}")
    top1 = c.numbers(m["top1_by_step"], "top1_by_step", None, 0, 1)
    steps = len(top1)
    if not 1 <= steps <= most_steps:
        raise c.fail(f"top1_by_step has {steps} steps; expected 1..{most_steps}")
    c.numbers(m["top5_by_step"], "top5_by_step", steps, 0, 1)
    c.numbers(m["ece_by_step"], "ece_by_step", steps, 0, 1)
    per_class = m["per_class_by_step"]
    if not isinstance(per_class, list) or len(per_class) != steps:
        raise c.fail(f"per_class_by_step must be a list of {steps} steps")
    for s, row in enumerate(per_class):
        c.numbers(row, f"per_class_by_step[{s}]", num_classes, 0, 1, nullable=True)
    confusion = m["confusion_by_step"]
    if not isinstance(confusion, list) or len(confusion) != steps:
        raise c.fail(f"confusion_by_step must be a list of {steps} steps")
    for s, matrix in enumerate(confusion):
        if not isinstance(matrix, list) or len(matrix) != num_classes:
            raise c.fail(f"confusion_by_step[{s}] must have {num_classes} rows (one per class)")
        for r, row in enumerate(matrix):
            c.numbers(row, f"confusion_by_step[{s}][{r}]", num_classes, 0, 2**53, integer=True)
    halting = m.get("halting")
    if halting is not None:
        h = c.mapping(halting, "halting")
        c.number(h.get("threshold"), "halting.threshold", 0, 1)
        c.string(h.get("rule"), "halting.rule")
        c.numbers(h.get("halt_step_histogram"), "halting.halt_step_histogram", steps, 0, 2**53, integer=True)
        c.number(h.get("adaptive_top1"), "halting.adaptive_top1", 0, 1)
        c.number(h.get("adaptive_mean_steps"), "halting.adaptive_mean_steps", 0, steps)
        c.numbers(h.get("fixed_top1"), "halting.fixed_top1", steps, 0, 1)
        c.numbers(h.get("mean_halt_prob_by_step"), "halting.mean_halt_prob_by_step", steps, 0, 1)
        _validate_halting_curve(c, h, steps)
    if "class_names" in m:
        names = m["class_names"]
        if not isinstance(names, list) or len(names) != num_classes or not all(isinstance(n, str) for n in names):
            raise c.fail(f"class_names must be a list of {num_classes} strings (the model's classes)")
    for key in ("data", "data_note", "split", "arch", "evaluated_at", "device"):
        if key in m:
            c.string(m[key], key)
    for key in ("num_images", "parameters", "trained_steps", "max_steps", "skipped_images"):
        if key in m:
            c.number(m[key], key, 0, 2**53, integer=True)
    for key in ("seconds", "images_per_second"):
        if key in m:
            c.number(m[key], key, 0)
    if "subset" in m:
        sub = c.mapping(m["subset"], "subset")
        c.string(sub.get("rule"), "subset.rule")
        c.number(sub.get("num_images"), "subset.num_images", 0, 2**53, integer=True)
        c.numbers(sub.get("top1_by_step"), "subset.top1_by_step", steps, 0, 1)
    return {**m, "halting": halting}


OOD_RATES = ("val_false_alarm", "target_false_alarm", "test_false_alarm", "uniform_noise_flagged", "outside_flagged")
OOD_COUNTS = ("val_images", "fit_images", "test_images", "outside_images", "trained_steps")
MAX_OUTSIDE_NAMES = 10_000


def validate_ood_facts(raw: object, source: str) -> dict:
    """ood.json as ``python -m vitrm.ood`` writes it: the rule's text, its threshold and the measured rates.
    Only the keys below are kept, so what a view reads has been checked; a number must be a number (the
    Explore page formats them), a rate lies in 0..1."""
    from .ood import FEATURES
    c = _Checker(source)
    f = c.mapping(raw, "the file")
    facts = {"rule": c.string(f.get("rule"), "rule"),
             "threshold": c.number(f.get("threshold"), "threshold", 0),
             "val_false_alarm": c.number(f.get("val_false_alarm"), "val_false_alarm", 0, 1),
             "val_images": c.number(f.get("val_images"), "val_images", 1, 2**53, integer=True)}
    if "feature" in f and c.string(f["feature"], "feature") not in FEATURES:     # a string first: {} is unhashable
        raise c.fail(f"feature is {_repr(f['feature'])}; expected one of {sorted(FEATURES)}")
    for key in OOD_RATES:
        if key in f:
            facts[key] = c.number(f[key], key, 0, 1)
    for key in OOD_COUNTS:
        if key in f:
            facts[key] = c.number(f[key], key, 0, 2**53, integer=True)
    if facts.get("outside_images") and "outside_flagged" not in facts:
        raise c.fail("outside_images without outside_flagged")
    for key in ("feature", "outside_folder", "data"):
        if key in f:
            facts[key] = c.string(f[key], key)
    if "outside_missed" in f:
        missed = f["outside_missed"]
        if not isinstance(missed, list) or len(missed) > MAX_OUTSIDE_NAMES or not all(isinstance(n, str)
                                                                                       for n in missed):
            raise c.fail(f"outside_missed must be a list of at most {MAX_OUTSIDE_NAMES:,} file names")
        facts["outside_missed"] = missed
    return facts


def read_ood(path: str | os.PathLike, num_classes: int, dim: int, budget: Budget | None = None):
    """(the facts of ``path/ood.json``, validated; the tensors of ``ood.safetensors``, read bounded by the size
    the model's shapes imply), or None when either file is absent."""
    from safetensors import SafetensorError
    from safetensors.torch import load as load_safetensors

    from .ood import FACTS, WEIGHTS
    facts_file, weights_file = Path(path) / FACTS, Path(path) / WEIGHTS
    if not (facts_file.is_file() and weights_file.is_file()):
        return None
    data = read_bounded(facts_file, MAX_JSON_BYTES, budget)
    facts = validate_ood_facts(parse_json(data, str(facts_file)), str(facts_file))
    cap = 4 * (num_classes * dim + dim * dim) + 2**16        # two float32 arrays and their header
    data = read_bounded(weights_file, cap, budget)
    try:
        tensors = load_safetensors(data)
    except (SafetensorError, ValueError, TypeError, OverflowError) as e:
        raise CheckpointError(f"{weights_file}: not a readable safetensors file ({_short(e)})") from None
    return facts, tensors


def _validate_halting_curve(c: _Checker, h: dict, steps: int) -> None:
    """The optional threshold curve and budget (evaluate writes them for a recursive model)."""
    if "curve" in h:
        curve = c.mapping(h["curve"], "halting.curve")
        n = len(c.numbers(curve.get("threshold"), "halting.curve.threshold", None, 0, 1))
        c.numbers(curve.get("mean_steps"), "halting.curve.mean_steps", n, 1, steps)
        c.numbers(curve.get("top1"), "halting.curve.top1", n, 0, 1)
    if h.get("budget") is not None:
        b = c.mapping(h["budget"], "halting.budget")
        for key in ("tolerance", "reference_top1", "threshold", "top1"):
            c.number(b.get(key), f"halting.budget.{key}", 0, 1)
        c.number(b.get("mean_steps"), "halting.budget.mean_steps", 1, steps)
        c.number(b.get("reference_step"), "halting.budget.reference_step", 1, steps, integer=True)


def validate_train_config(raw: object, source: str = TRAIN_CONFIG) -> dict:
    """train_config.json: the fields that readers use must have their types (the rest is kept as is)."""
    c = _Checker(source)
    t = c.mapping(raw, "the file")
    for key in ("data", "data_dir", "out", "step_weighting"):
        if key in t:
            c.string(t[key], key)
    if "init_from" in t:
        c.string(t["init_from"], "init_from", optional=True)
    for key in ("epochs", "batch_size", "val_size", "seed"):
        if key in t:
            c.number(t[key], key, 0, 2**53, integer=True)
    for key in ("lr", "ema_decay", "label_smoothing", "weight_decay"):
        if key in t:
            c.number(t[key], key)
    for key in ("model", "augment"):
        if key in t:
            c.mapping(t[key], key)
    if "detach_between_steps" in t and not isinstance(t["detach_between_steps"], bool):
        raise c.fail("detach_between_steps must be true or false")
    return t


def validate_predictions(table: pd.DataFrame, num_classes: int, steps: int | None, source: str) -> pd.DataFrame:
    c = _Checker(source)
    found = sum(1 for col in table.columns if str(col).startswith("pred_"))
    if steps is not None and found != steps:
        raise c.fail(f"has {found} steps of predictions but metrics.json has {steps}")
    if not table.empty:
        # Whole blocks of columns at a time: a column at a time cost seconds on a table of thousands of steps.
        for cols, lo, hi in [(["index"], 0, 2**53), (["label"] + [f"pred_{s}" for s in range(1, found + 1)],
                                                     0, num_classes - 1)]:
            _in_range(c, table, cols, lo, hi, nan_ok=False)
        for kind in ("conf", "prob_true", "halt"):
            # baselines have no halting head: their halt_ columns are empty
            _in_range(c, table, [f"{kind}_{s}" for s in range(1, found + 1)], 0, 1, nan_ok=kind == "halt")
        halt_step = table["halt_step"].to_numpy(dtype=float)
        bad = np.flatnonzero(~(np.isnan(halt_step) | ((halt_step >= 1) & (halt_step <= found))))
        if len(bad):
            raise c.fail(f"halt_step on row {bad[0] + 1} is {halt_step[bad[0]]}, outside 1..{found}")
    return table


def _in_range(c: _Checker, table: pd.DataFrame, cols: list[str], lo, hi, nan_ok: bool) -> None:
    """Every value of ``cols`` in lo..hi (or NaN, when ``nan_ok``); else CheckpointError naming the first cell."""
    block = table[cols].to_numpy()
    values = block.astype(float, copy=False)
    ok = (values >= lo) & (values <= hi)
    if nan_ok:
        ok |= np.isnan(values)
    bad = np.argwhere(~ok)
    if len(bad):
        row, col = bad[0]
        raise c.fail(f"{cols[col]} on row {row + 1} is {block[row, col]}, outside {lo}..{hi}")


def _predictions_dtypes(columns: list[str], source: str, most: int = MAX_STEPS, expected: int | None = None) -> dict:
    """The table's column types, from its header alone: a table of the wrong step count is refused before a row
    is parsed (a 4,096-step table beside a model of 16 costs nothing)."""
    c = _Checker(source)
    required = ["index", "path", "label", "label_name", "halt_step"]
    missing = [col for col in required if col not in columns]
    steps = sum(1 for col in columns if col.startswith("pred_"))
    if not 1 <= steps <= most:
        raise c.fail(f"expected pred_1 .. pred_N columns for 1 to {most} steps, found {steps}")
    if expected is not None and steps != expected:
        raise c.fail(f"has {steps} steps of predictions but metrics.json has {expected}")
    per_step = [f"{kind}_{s}" for s in range(1, steps + 1) for kind in ("pred", "conf", "prob_true", "halt")]
    present = set(columns)              # a list here made a 4,096-step table cost 7 s of lookups
    missing += [col for col in per_step if col not in present]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise c.fail(f"missing columns {shown}")
    if len(set(columns)) != len(columns):
        raise c.fail("repeats a column name")
    dtypes = {"index": "int64", "label": "int64", "path": str, "label_name": str, "halt_step": "float64"}
    for s in range(1, steps + 1):
        dtypes |= {f"pred_{s}": "int64", f"conf_{s}": "float64", f"prob_true_{s}": "float64",
                   f"halt_{s}": "float64"}
    return dtypes


# --------------------------------------------------------------------------- the files

def read_metrics(path: str | os.PathLike, num_classes: int | None = None, budget: Budget | None = None,
                 most_steps: int = MAX_STEPS) -> dict | None:
    """``path/metrics.json`` validated, or None when absent. ``num_classes`` defaults to config.json's; at most
    ``most_steps`` steps (the model's ``vitrm.steps.max_steps``)."""
    file = Path(path) / METRICS
    data = read_bounded(file, MAX_JSON_BYTES, budget)
    if data is None:
        return None
    if num_classes is None:
        from .checkpoint import read_config
        num_classes = read_config(path).num_classes
    return validate_metrics(parse_json(data, str(file)), num_classes, str(file), most_steps)


def read_train_config(path: str | os.PathLike, budget: Budget | None = None) -> dict | None:
    file = Path(path) / TRAIN_CONFIG
    data = read_bounded(file, MAX_JSON_BYTES, budget)
    return None if data is None else validate_train_config(parse_json(data, str(file)), str(file))


def _read_table(file: Path, cap: int, dtypes_for, budget: Budget | None = None) -> pd.DataFrame | None:
    data = read_bounded(file, cap, budget)
    if data is None:
        return None
    if file.name.endswith(".gz"):
        data = gunzip_bounded(data, cap, str(file), budget)
    try:
        text = data.decode("utf-8-sig")          # as pandas does, a byte-order mark is not part of the header
        # The header through the csv module: pandas' own (nrows=0) builds an empty frame of every column, a
        # tenth of a second on the first read in a process, on a fresh server's first page.
        columns = next(csv.reader(io.StringIO(text)), [])
        if not columns:
            raise pd.errors.EmptyDataError
        dtypes = dtypes_for(columns, str(file))
        # Parsed with types inferred, then checked column by column: pandas given a type per column spends seconds
        # on a table of thousands of columns (a 4,096-step table of 10 rows, 16,389 columns: 8.5 s against 1.6 s).
        text_columns = [col for col, kind in dtypes.items() if kind is str]
        table = pd.read_csv(io.StringIO(text), dtype=dict.fromkeys(text_columns, str), usecols=list(dtypes),
                            keep_default_na=False, na_values=[""])
        return _typed_columns(table, dtypes, text_columns, str(file))
    except CheckpointError:
        raise
    except UnicodeDecodeError:
        raise CheckpointError(f"{file}: not UTF-8 text") from None
    except pd.errors.EmptyDataError:
        raise CheckpointError(f"{file}: empty") from None
    except (ValueError, TypeError, OverflowError, pd.errors.ParserError) as e:
        # ValueError covers a value of the wrong type in a typed column ("cat" where an integer belongs)
        raise CheckpointError(f"{file}: not a table of the expected types ({_short(e)})") from None


def _typed_columns(table: pd.DataFrame, dtypes: dict, text_columns: list[str], source: str) -> pd.DataFrame:
    """``table`` with each column of its declared type, or CheckpointError naming the first that is not."""
    for col in text_columns:
        table[col] = table[col].fillna("")          # an empty cell is an empty name, not a missing number
    kinds = {col: dtype.kind for col, dtype in table.dtypes.items()}      # one look per column, not a lookup
    for col, kind in dtypes.items():
        found = kinds[col]
        if kind == "int64" and found != "i":
            raise CheckpointError(f"{source}: not a table of the expected types ({col} holds a value that is not "
                                  "an integer)")
        if kind == "float64" and found not in "if":
            raise CheckpointError(f"{source}: not a table of the expected types ({col} holds a value that is not "
                                  "a number)")
    floats = [col for col, kind in dtypes.items() if kind == "float64" and kinds[col] != "f"]
    if floats:
        table[floats] = table[floats].astype("float64")
    return table


def read_predictions(path: str | os.PathLike, num_classes: int, steps: int | None = None,
                     budget: Budget | None = None, most_steps: int = MAX_STEPS) -> pd.DataFrame | None:
    """The per-image table (predictions.csv.gz, else predictions.csv) validated against the number of classes
    (and of steps, from metrics.json; at most ``most_steps``, the model's ``vitrm.steps.max_steps``), or None
    when there is none."""
    file = predictions_file(path)
    if file is None:
        return None

    def dtypes(columns, source):
        return _predictions_dtypes(columns, source, most_steps, steps)
    table = _read_table(file, MAX_CSV_BYTES, dtypes, budget)
    return None if table is None else validate_predictions(table, num_classes, steps, str(file))


def _log_dtypes(columns: list[str], source: str) -> dict:
    if "epoch" not in columns:
        raise CheckpointError(f"{source}: missing the epoch column")
    if len(set(columns)) != len(columns):
        raise CheckpointError(f"{source}: repeats a column name")
    return {col: "int64" if col == "epoch" else "float64" for col in columns}


def read_train_log(path: str | os.PathLike, budget: Budget | None = None) -> pd.DataFrame | None:
    """``path/train_log.csv``: every column a number, epochs counted from 1."""
    file = Path(path) / TRAIN_LOG
    log = _read_table(file, MAX_JSON_BYTES, _log_dtypes, budget)
    if log is None:
        return None
    for col in log.columns:
        values = log[col].to_numpy(dtype=float)
        if np.isinf(values).any():
            raise CheckpointError(f"{file}: {col} holds an infinite value")
    if not log.empty and (log["epoch"].min() < 1 or log["epoch"].max() > 10**6):
        raise CheckpointError(f"{file}: epochs must be counted from 1 (up to a million)")
    return log


# --------------------------------------------------------------------------- projection.safetensors

MAX_PROJECTION_BYTES = 16 * 2**20  # 10,000 images x 64 steps (vitrm.projection's caps) is about 5.2 MB
MAX_SAFETENSORS_HEADER = 2**16     # four tensors and a few strings of metadata need under 2 KB


def _safetensors_header(data: bytes, source: str) -> dict:
    """The JSON header of a safetensors file, through ``parse_json`` (bounded, finite, shallow)."""
    if len(data) < 8:
        raise CheckpointError(f"{source}: not a safetensors file (shorter than its header length)")
    size = int.from_bytes(data[:8], "little")
    if not 2 <= size <= min(MAX_SAFETENSORS_HEADER, len(data) - 8):
        raise CheckpointError(f"{source}: not a safetensors file (a header of {size:,} bytes)")
    header = parse_json(data[8:8 + size], source)
    if not isinstance(header, dict):
        raise CheckpointError(f"{source}: not a safetensors file (its header is not a JSON object)")
    return header


def _projection_metadata(header: dict, source: str) -> dict[str, str]:
    from .projection import FORMAT
    c = _Checker(source)
    meta = c.mapping(header.get("__metadata__", {}), "the metadata")
    for key, value in meta.items():
        c.string(value, f"metadata {_repr(key)}")
    if meta.get("format") != FORMAT:
        raise c.fail(f"format is {_repr(meta.get('format'))}, expected {FORMAT!r} (written by python -m vitrm project)")
    return meta


def validate_projection(tensors: dict, meta: dict[str, str], num_classes: int, source: str):
    """The four arrays of projection.safetensors (``vitrm.projection``): names, dtypes, shapes within the caps,
    finite coordinates, distinct image indices, classes in range."""
    from .projection import KEYS, MAX_IMAGES, MAX_STEPS as MAX_PROJECTED_STEPS, Projection
    c = _Checker(source)
    if set(tensors) != set(KEYS):
        raise c.fail(f"holds {sorted(tensors)[:6]}; expected exactly {sorted(KEYS)}")
    for name, (dtype, ndim) in KEYS.items():
        t = tensors[name]
        if t.dtype != dtype or t.ndim != ndim:
            raise c.fail(f"{name} is {t.dtype} with {t.ndim} dimensions; expected {np.dtype(dtype)} with {ndim}")
    coords, index, label, pred = (tensors[k] for k in ("coords", "index", "label", "pred"))
    steps, images = coords.shape[:2]
    if not (1 <= steps <= MAX_PROJECTED_STEPS and 1 <= images <= MAX_IMAGES and coords.shape[2] == 2):
        raise c.fail(f"coords has shape {coords.shape}; expected [1..{MAX_PROJECTED_STEPS} steps, "
                     f"1..{MAX_IMAGES:,} images, 2]")
    if index.shape != (images,) or label.shape != (images,) or pred.shape != (steps, images):
        raise c.fail(f"index {index.shape}, label {label.shape} and pred {pred.shape} do not fit coords "
                     f"{coords.shape} (one entry per image, pred one per step and image)")
    if not np.isfinite(coords).all():
        raise c.fail("coords holds a value that is not a finite number")
    if (index < 0).any() or (index > 2**53).any() or len(np.unique(index)) != images:
        raise c.fail("index must hold distinct image positions from 0")
    for name, values in (("label", label), ("pred", pred)):
        if ((values < 0) | (values >= num_classes)).any():
            raise c.fail(f"{name} holds a class outside 0..{num_classes - 1}")
    try:
        explained = json.loads(meta.get("explained", "null"))
    except ValueError:
        explained = None
    if not isinstance(explained, list) or len(explained) != 2:
        raise c.fail("explained must be a JSON list of the two components' shares of the variance")
    c.numbers(explained, "explained", 2, 0, 1)
    for array in (coords, index, label, pred):
        array.flags.writeable = False
    return Projection(coords=coords, index=index, label=label, pred=pred, explained=tuple(explained),
                      data=meta.get("data", ""), split=meta.get("split", ""), feature=meta.get("feature", ""))


def read_projection(path: str | os.PathLike, num_classes: int, budget: Budget | None = None):
    """``path/projection.safetensors`` (``python -m vitrm project``) validated, or None when absent; charged to the
    checkpoint's ``budget`` when the caller reads its files as one (the app does)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load as load_safetensors

    from .projection import FILE
    file = Path(path) / FILE
    data = read_bounded(file, MAX_PROJECTION_BYTES, budget)
    if data is None:
        return None
    meta = _projection_metadata(_safetensors_header(data, str(file)), str(file))
    try:
        tensors = load_safetensors(data)
    except (SafetensorError, ValueError, TypeError, OverflowError) as e:
        raise CheckpointError(f"{file}: not a readable safetensors file ({_short(e)})") from None
    return validate_projection(tensors, meta, num_classes, str(file))
