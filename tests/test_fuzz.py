"""A seeded mutation loop over every file a checkpoint carries: loading raises CheckpointError or succeeds.

Each case starts from a real checkpoint (saved, then evaluated, with a training record and an
out-of-distribution rule), changes one file and loads it the way the CLI and the app do: ``vitrm.load``
for ``config.json`` and the safetensors header, ``vitrm.sidefiles`` for ``metrics.json``,
``predictions.csv``, ``train_config.json`` and ``train_log.csv``, ``vitrm.ood.load`` for ``ood.json``;
and a separate loop plants stage folders (many, missing, linked out of the checkpoint or to a file,
holding damaged logs) and reads the training history through one ``sidefiles.Budget``. Mutations are both structural
(a JSON value replaced by another type, a huge or negative number, a deep nest, a key dropped or
added; a header's dtype, shape, offsets or length prefix changed) and byte-level (flips,
truncation, insertions). Any other exception, or a hang, fails the test and names the case so it
can be replayed: ``case(seed)`` rebuilds it.
"""

from __future__ import annotations

import gzip
import json
import random
import shutil
import struct
import time
from pathlib import Path

import pytest
import torch

import vitrm
from testkit.fakedata import write_imagefolder
from vitrm import CheckpointError, ViTRM, ViTRMConfig, sidefiles
from vitrm.evaluate import evaluate_checkpoint

CASES_PER_FILE = 1500      # for the model's files and evaluate's; 500 for the training record and ood.json, and
SMALL_CASES = 500          # STAGE_CASES stage layouts: 7,600 cases, two to four minutes on 2 busy cores
STAGE_CASES = 100
CLASSES = ("cat", "dog", "frog")
# Mutated configs may build degenerate layers, and mutated tables odd casts; both end refused.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")

SMALL = ViTRMConfig(image_size=8, patch_size=4, dim=8, heads=1, layers=1, trained_steps=2, latent_updates=1,
                    num_classes=3, class_names=CLASSES)

ODD_VALUES = [None, True, False, 0, -1, 1, 2**31, 2**63, -2**63, 10**30, 1.5, -0.0, 1e308, 1e-320, "", "x",
              "NaN", "<b>x</b>", "[a](http://127.0.0.1:9/)", "\x00", "a" * 1000, [], {}, [0], {"a": 1},
              [[[[[[[[[[1]]]]]]]]]], list(range(50))]
RAW_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e999", "9" * 5000, "-0", "1E-400"]


def mutate_json(value, rng: random.Random):
    """A copy of ``value`` with one node replaced, dropped or added."""
    value = json.loads(json.dumps(value))
    containers = [(None, None, value)]
    stack = [value]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
        for key, child in items:
            containers.append((node, key, child))
            if isinstance(child, (dict, list)):
                stack.append(child)
    parent, key, child = rng.choice(containers)
    if parent is None:
        return rng.choice(ODD_VALUES) if rng.random() < 0.2 else value
    action = rng.random()
    if action < 0.6:
        parent[key] = rng.choice(ODD_VALUES)
    elif action < 0.75 and isinstance(parent, dict):
        del parent[key]
    elif action < 0.85 and isinstance(parent, list):
        del parent[key]
    elif action < 0.95 and isinstance(parent, dict):
        parent[rng.choice(["payload", "extra", "__class__"])] = rng.choice(ODD_VALUES)
    else:
        parent[key] = [child] * rng.randint(2, 5) if rng.random() < 0.5 else {"nested": child}
    return value


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        action = rng.random()
        at = rng.randrange(len(data) + 1) if data else 0
        if action < 0.4 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif action < 0.6:
            del data[at:at + rng.randint(1, 64)]
        elif action < 0.8:
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        else:
            data = data[:at]
    return bytes(data)


def mutate_text_number(text: str, rng: random.Random) -> str:
    """Swap one number in JSON text for a literal the parser must refuse or survive."""
    import re
    numbers = list(re.finditer(r"-?\d+(\.\d+)?([eE][-+]?\d+)?", text))
    if not numbers:
        return text
    m = rng.choice(numbers)
    return text[:m.start()] + rng.choice(RAW_NUMBERS) + text[m.end():]


def mutate_json_file(text: str, rng: random.Random) -> bytes:
    r = rng.random()
    if r < 0.6:
        return json.dumps(mutate_json(json.loads(text), rng)).encode()
    if r < 0.8:
        return mutate_text_number(text, rng).encode()
    return mutate_bytes(text.encode(), rng)


def mutate_csv(text: str, rng: random.Random) -> bytes:
    lines = text.splitlines()
    r = rng.random()
    if r < 0.5:
        row = rng.randrange(len(lines))
        cells = lines[row].split(",")
        cells[rng.randrange(len(cells))] = str(rng.choice(ODD_VALUES + RAW_NUMBERS + ["99", "-5", "1e9", "inf"]))
        lines[row] = ",".join(cells)
    elif r < 0.65:
        cells = lines[0].split(",")
        del cells[rng.randrange(len(cells))]
        lines[0] = ",".join(cells)
    elif r < 0.75:
        lines = lines[:rng.randrange(len(lines) + 1)]
    elif r < 0.85:
        lines.insert(rng.randrange(len(lines) + 1), ",".join(["x"] * rng.randint(1, 200)))
    else:
        return mutate_bytes(text.encode(), rng)
    return ("\n".join(lines) + "\n").encode()


def mutate_safetensors(data: bytes, rng: random.Random) -> bytes:
    (length,) = struct.unpack("<Q", data[:8])
    header, body = json.loads(data[8:8 + length]), data[8 + length:]
    r = rng.random()
    if r < 0.5:
        name = rng.choice(list(header))
        entry = header[name]
        if name == "__metadata__":
            key = rng.choice(list(entry))
            entry[key] = mutate_json_file(entry[key], rng).decode("utf-8", "replace") if key == "config" \
                else str(rng.choice(ODD_VALUES))
        else:
            field = rng.choice(["dtype", "shape", "data_offsets"])
            if field == "dtype":
                entry["dtype"] = rng.choice(["F16", "BF16", "F64", "I64", "U8", "BOOL", "F8_E4M3", "XX", 5])
            elif field == "shape":
                entry["shape"] = rng.choice([[], [0], [2**40], [-1], [1, 1, 1, 1, 1, 1, 1, 1], entry["shape"][::-1],
                                             ["a"], [10**20]])
            else:
                lo, hi = entry["data_offsets"]
                entry["data_offsets"] = rng.choice([[hi, lo], [lo, hi + 4], [lo, 2**62], [0, 0], [-1, hi], [lo]])
        new = json.dumps(header).encode()
        return struct.pack("<Q", len(new)) + new + body
    if r < 0.65:
        return struct.pack("<Q", rng.choice([0, 1, length - 1, length + 1, 2**63, len(data)])) + data[8:]
    if r < 0.85:
        return data[:8] + mutate_bytes(data[8:8 + length], rng) + body
    return mutate_bytes(data, rng)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    data = write_imagefolder(root / "data", CLASSES, train_per_class=1, test_per_class=3, size=8)
    torch.manual_seed(0)
    vitrm.save(ViTRM(SMALL), root / "ckpt")
    evaluate_checkpoint(root / "ckpt", f"imagefolder:{data}", cache_dir=None, progress=False)
    # The table as plain predictions.csv (the older format, still read), so that it can be mutated as text.
    packed = root / "ckpt" / "predictions.csv.gz"
    (root / "ckpt" / "predictions.csv").write_bytes(gzip.decompress(packed.read_bytes()))
    packed.unlink()
    # The training record: what vitrm.train writes (its resolved config and a log of three epochs)...
    from vitrm.train import LOG_FIELDS, TRAIN_CONFIG, TrainConfig
    (root / "ckpt" / TRAIN_CONFIG).write_text(json.dumps(TrainConfig(model=SMALL).to_dict()
                                                        | {"command": ["python", "-m", "vitrm", "train"]}))
    rows = [",".join(LOG_FIELDS)] + [",".join(str(e) if f == "epoch" else "" if f == "test_top1" else
                                              f"{0.5 / e:.4f}" for f in LOG_FIELDS) for e in (1, 2, 3)]
    (root / "ckpt" / "train_log.csv").write_text("\n".join(rows) + "\n")
    # ...and an out-of-distribution rule of the model's width (vitrm.ood).
    from vitrm import ood
    generator = torch.Generator().manual_seed(0)
    ood.save(ood.fit(torch.randn(30, SMALL.dim, generator=generator), torch.arange(30) % 3,
                     torch.randn(10, SMALL.dim, generator=generator)), root / "ckpt")
    for load in (load_train_config, load_train_log, load_ood):
        load(root / "ckpt")                 # the pristine files pass
    return root / "ckpt"


def load_config_and_weights(path: Path) -> None:
    vitrm.load(path)


def load_metrics(path: Path) -> None:
    sidefiles.read_metrics(path, num_classes=len(CLASSES))


def load_predictions(path: Path) -> None:
    sidefiles.read_predictions(path, len(CLASSES), steps=2 * SMALL.trained_steps)


def load_train_config(path: Path) -> None:
    sidefiles.read_train_config(path)


def load_train_log(path: Path) -> None:
    sidefiles.read_train_log(path)


def load_ood(path: Path) -> None:
    from vitrm import ood
    ood.load(path)


TARGETS = {
    "config.json": (mutate_json_file, load_config_and_weights),
    "model.safetensors": (mutate_safetensors, load_config_and_weights),
    "metrics.json": (mutate_json_file, load_metrics),
    "predictions.csv": (mutate_csv, load_predictions),
    "train_config.json": (mutate_json_file, load_train_config),
    "train_log.csv": (mutate_csv, load_train_log),
    "ood.json": (mutate_json_file, load_ood),
}


@pytest.mark.parametrize("name", TARGETS)
def test_a_mutated_file_raises_only_checkpoint_error(name, pristine, tmp_path):
    mutate, load = TARGETS[name]
    original = (pristine / name).read_bytes()
    as_text = name != "model.safetensors"
    work = Path(shutil.copytree(pristine, tmp_path / "work"))
    outcomes = {"refused": 0, "loaded": 0}
    start = time.perf_counter()
    cases = SMALL_CASES if name in ("train_config.json", "train_log.csv", "ood.json") else CASES_PER_FILE
    for seed in range(cases):
        rng = random.Random(f"{name}:{seed}")
        data = mutate(original.decode() if as_text else original, rng)
        (work / name).write_bytes(data)
        try:
            load(work)
            outcomes["loaded"] += 1
        except CheckpointError as e:
            assert str(e), f"{name} case {seed}: an empty message"
            outcomes["refused"] += 1
        except Exception as e:  # noqa: BLE001 - the point of the test
            pytest.fail(f"{name} case {seed} (random.Random('{name}:{seed}')): {type(e).__name__}: {e}")
    seconds = time.perf_counter() - start
    print(f"{name}: {cases} cases in {seconds:.1f} s: {outcomes}")
    # The mutations really do damage: most are refused. The training record's readers check the fields that are
    # read and keep the rest as written (train_config.json), and take any number in any column (train_log.csv),
    # so a dropped or added key or column, or an unread value, passes.
    lenient = name in ("train_config.json", "train_log.csv")
    assert outcomes["refused"] > cases // (4 if lenient else 2), outcomes


def plant_stages(path: Path, outside: Path, log: bytes, rng: random.Random) -> None:
    """Stage folders as a stranger might ship them: up to 40, with gaps, links out of the checkpoint and back
    into it, files where folders belong, and damaged logs and configs."""
    last = rng.randint(0, 40)
    for k in range(1, last + 1):
        name = f"stage{k}" if rng.random() < 0.9 else f"stage{last}{rng.choice('bcd')}"
        folder = path / name
        if folder.exists() or folder.is_symlink():
            continue
        kind = rng.random()
        if kind < 0.1:
            folder.symlink_to(outside, target_is_directory=True)
        elif kind < 0.15:
            folder.symlink_to(path, target_is_directory=True)         # a loop back into the checkpoint
        elif kind < 0.2:
            folder.write_bytes(log)                                   # a file named like a folder
        else:
            folder.mkdir()
            r = rng.random()
            if r < 0.1:
                (folder / "train_log.csv").symlink_to(outside / "train_log.csv")
            elif r < 0.6:
                (folder / "train_log.csv").write_bytes(log if rng.random() < 0.5 else mutate_csv(log.decode(), rng))
            if rng.random() < 0.3:
                (folder / "train_config.json").write_bytes(mutate_bytes(b'{"epochs": 2}', rng))


def load_history(path: Path) -> None:
    """The training history as the app reads it: every stage's log and config through one budget."""
    budget = sidefiles.Budget(path)
    for folder in vitrm.earlier_stages(path) + vitrm.averaged_runs(path):
        sidefiles.read_train_log(folder, budget)
        sidefiles.read_train_config(folder, budget)


def test_mutated_stage_folders_raise_only_checkpoint_error(pristine, tmp_path):
    log = (pristine / "train_log.csv").read_bytes()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "train_log.csv").write_bytes(log)
    outcomes = {"refused": 0, "loaded": 0}
    for seed in range(STAGE_CASES):
        rng = random.Random(f"stages:{seed}")
        work = tmp_path / f"work{seed}"          # the history needs only the folders and their files
        work.mkdir()
        (work / "train_log.csv").write_bytes(log)
        plant_stages(work, outside, log, rng)
        try:
            load_history(work)
            outcomes["loaded"] += 1
        except CheckpointError as e:
            assert str(e), f"stages case {seed}: an empty message"
            outcomes["refused"] += 1
        except Exception as e:  # noqa: BLE001 - the point of the test
            pytest.fail(f"stages case {seed} (random.Random('stages:{seed}')): {type(e).__name__}: {e}")
        shutil.rmtree(work)
    print(f"stage folders: {STAGE_CASES} cases: {outcomes}")
    assert outcomes["refused"] > STAGE_CASES // 4 and outcomes["loaded"] > STAGE_CASES // 10, outcomes
