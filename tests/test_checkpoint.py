"""Specification of the checkpoint directory: bit-exact, atomic, and safe to load from strangers."""

import builtins
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

import vitrm
from vitrm import CheckpointError, CNNConfig, CompactCNN, ViT, ViTConfig, ViTRM, ViTRMConfig, vit_config_for
from vitrm.checkpoint import MAX_PARAMETERS, estimate_parameters
from vitrm.config import LEGACY_FIELDS

ROOT = Path(__file__).resolve().parents[1]


def tiny(**overrides) -> ViTRMConfig:
    return ViTRMConfig(**{**dict(dim=32, heads=2, trained_steps=2, latent_updates=1), **overrides})


def perturbed(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Move every weight and buffer off its initial value, as training would."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(torch.randn(tensor.shape, generator=g).abs() * 0.01)
    return model


MODELS = {
    "vitrm-concat-patch": lambda: ViTRM(tiny(combine="concat", tokenizer="patch")),
    "vitrm-add-conv": lambda: ViTRM(tiny(combine="add", tokenizer="conv")),
    "vitrm-concat-conv": lambda: ViTRM(tiny(combine="concat", tokenizer="conv")),
    "vit": lambda: ViT(vit_config_for(tiny(layers=1))),
    "cnn": lambda: CompactCNN(CNNConfig(cnn_widths=(8, 16))),
}


def saved(tmp_path: Path, name: str = "ckpt", make=MODELS["vitrm-concat-patch"],
          seed: int = 0) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(seed)
    model = perturbed(make(), seed)
    return vitrm.save(model, tmp_path / name), model


def snapshot(folder: Path) -> dict:
    """Every path under ``folder`` with its size and modification time."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k


# --------------------------------------------------------------------------- round trip

@pytest.mark.parametrize("name", MODELS)
def test_save_then_load_is_bit_exact_and_ready_in_eval_mode(name, tmp_path):
    path, model = saved(tmp_path, make=MODELS[name])
    assert sorted(os.listdir(path)) == ["config.json", "model.safetensors"]
    loaded = vitrm.load(path)
    assert type(loaded) is type(model)
    assert loaded.config == model.config
    assert not loaded.training
    assert_same_weights(model, loaded)
    images = torch.randn(2, 3, 32, 32)
    assert torch.equal(loaded(images), model.eval()(images))


def test_saved_files_are_readable_by_others_like_any_shared_file(tmp_path):
    # Atomic writes go through mkstemp, which makes 0600 files; a checkpoint copied to a class
    # server must still be readable by the user the app runs as.
    path, _ = saved(tmp_path)
    for name in ("config.json", "model.safetensors"):
        assert os.stat(path / name).st_mode & 0o777 == 0o644, name


def test_load_builds_any_architecture_from_its_config(tmp_path):
    for name, make in MODELS.items():
        path, model = saved(tmp_path, name, make)
        assert vitrm.read_config(path).arch == model.config.arch
        assert type(vitrm.load(path)) is type(model)


def test_config_json_carries_class_names_normalization_and_steps(tmp_path):
    path, _ = saved(tmp_path, make=lambda: ViTRM(tiny(class_names=tuple("abcdefghij"), mean=(0.1, 0.2, 0.3),
                                                         trained_steps=5)))
    raw = json.loads((path / "config.json").read_text())
    assert raw["class_names"] == list("abcdefghij")
    assert raw["mean"] == [0.1, 0.2, 0.3] and raw["trained_steps"] == 5 and raw["arch"] == "vitrm"


@pytest.mark.parametrize("name", MODELS)
def test_config_json_holds_only_the_keys_its_architecture_reads(name, tmp_path):
    path, model = saved(tmp_path, make=MODELS[name])
    raw = json.loads((path / "config.json").read_text())
    assert set(raw) == type(model.config).field_names() | {"arch"}
    assert vitrm.read_config(path) == model.config


@pytest.mark.parametrize("arch, key", [("cnn", "dim"), ("cnn", "trained_steps"), ("vit", "latent_updates"),
                                       ("vit", "combine"), ("vit", "cnn_widths")])
def test_a_key_its_architecture_does_not_read_is_refused_by_name(arch, key, tmp_path):
    # A CNN config with a width, a ViT's with latent updates: refused, naming the key, rather than
    # quietly ignoring what it says.
    path, _ = saved(tmp_path, make=MODELS[arch])
    _config_with(path, **{key: [8] if key == "cnn_widths" else getattr(ViTRMConfig(), key)})
    with pytest.raises(CheckpointError, match=rf"config.json: unknown keys \['{key}'\] for a {arch} model"):
        vitrm.load(path)


def _legacy_layout(config) -> dict:
    """``config`` as the one config class that served every architecture wrote it: every field of
    every architecture (the ones this architecture ignores at that class's defaults)."""
    everything = {**CNNConfig().to_dict(), **ViTRMConfig().to_dict(), **config.to_dict()}
    return {k: v for k, v in everything.items() if k in LEGACY_FIELDS}


@pytest.mark.parametrize("name", ["vitrm-add-conv", "vit", "cnn"])
def test_a_config_json_in_the_former_single_layout_is_read_as_its_architectures(name, tmp_path):
    # The runs and checkpoints written before each architecture had its own config (every shipped
    # ViTRM's among them) name every field of every architecture; the ones it does not read are dropped.
    path, model = saved(tmp_path, make=MODELS[name])
    _write_json(path / "config.json", _legacy_layout(model.config))
    assert vitrm.load(path).config == model.config
    # One field short of that layout, it is a config of today, and the foreign keys are errors.
    _write_json(path / "config.json", {k: v for k, v in _legacy_layout(model.config).items() if k != "mean"})
    with pytest.raises(CheckpointError, match=f"unknown keys .* for a {model.config.arch} model"):
        vitrm.load(path)


def test_a_config_built_in_code_must_be_its_models_own():
    with pytest.raises(ValueError, match="expected a ViTConfig, got ViTRMConfig"):
        ViT(tiny())
    with pytest.raises(ValueError, match="expected a ViTRMConfig, got CNNConfig"):
        ViTRM(CNNConfig())
    with pytest.raises(TypeError):
        ViTConfig(latent_updates=1)


def test_saving_again_keeps_the_other_files_of_the_directory(tmp_path):
    path, _ = saved(tmp_path)
    (path / "metrics.json").write_text('{"top1_by_step": [0.5]}')
    (path / "README.md").write_text("# card")
    vitrm.save(perturbed(ViTRM(tiny()), seed=1), path)
    assert (path / "metrics.json").read_text() == '{"top1_by_step": [0.5]}'
    assert (path / "README.md").read_text() == "# card"


def test_class_names_may_be_relabelled_after_saving(tmp_path):
    path, model = saved(tmp_path)
    raw = json.loads((path / "config.json").read_text())
    raw["class_names"] = [f"class {i}" for i in range(10)]
    (path / "config.json").write_text(json.dumps(raw))
    assert vitrm.load(path).config.class_names[0] == "class 0"


def test_read_metrics_is_none_until_evaluated_and_refuses_bad_json(tmp_path):
    path, _ = saved(tmp_path)
    assert vitrm.read_metrics(path) is None
    (path / "metrics.json").write_text("{oops")
    with pytest.raises(CheckpointError, match="metrics.json"):
        vitrm.read_metrics(path)


# --------------------------------------------------------------------------- atomic save

def _crash_mid_write(tensors, filename, metadata=None):
    Path(filename).write_bytes(b"half a safetensors file")
    raise OSError("simulated crash while writing")


def _crash_at_rename(src, dst):
    raise OSError("simulated crash before the rename")


@pytest.mark.parametrize("crash", [
    pytest.param(("vitrm.checkpoint.save_file", _crash_mid_write), id="mid-write"),
    pytest.param(("os.replace", _crash_at_rename), id="at-rename"),
])
def test_a_crash_while_saving_leaves_the_old_checkpoint_intact(crash, tmp_path, monkeypatch):
    path, old = saved(tmp_path)
    before = snapshot(path)
    newer = perturbed(ViTRM(tiny(combine="concat", heads=4)), seed=1)
    monkeypatch.setattr(*crash)
    with pytest.raises(OSError, match="simulated"):
        vitrm.save(newer, path)
    monkeypatch.undo()
    assert snapshot(path) == before                     # no temporary files left behind either
    assert_same_weights(vitrm.load(path), old)


def test_a_crash_between_the_two_renames_is_detected_not_mixed(tmp_path, monkeypatch):
    path, old = saved(tmp_path)
    newer = perturbed(ViTRM(tiny(combine="concat", heads=4)), seed=1)     # same tensor shapes, different model
    monkeypatch.setattr("vitrm.checkpoint.atomic_write_bytes", lambda *a: (_ for _ in ()).throw(OSError("crash")))
    with pytest.raises(OSError):
        vitrm.save(newer, path)
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="different config.json"):
        vitrm.load(path)


def test_sigkill_at_a_random_moment_while_saving_leaves_a_loadable_checkpoint(tmp_path):
    # A child saves two versions over one directory in a loop; it is killed at random moments.
    path = tmp_path / "ckpt"
    child = textwrap.dedent(f"""
        import sys, torch
        import vitrm
        torch.set_num_threads(1)
        models = []
        for seed in (0, 1):
            torch.manual_seed(seed)
            models.append(vitrm.ViTRM(vitrm.ViTRMConfig(dim=128, heads=4, layers=3)))
        vitrm.save(models[0], {str(path)!r})
        print("ready", flush=True)
        i = 0
        while True:
            i += 1
            vitrm.save(models[i % 2], {str(path)!r})
    """)
    rng = random.Random(0)
    for _ in range(2):
        proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        loaded = vitrm.load(path)
        versions = []
        for seed in (0, 1):
            torch.manual_seed(seed)
            versions.append(ViTRM(ViTRMConfig(dim=128, heads=4, layers=3)).state_dict())
        state = loaded.state_dict()
        assert any(all(torch.equal(state[k], v[k]) for k in v) for v in versions)


# --------------------------------------------------------------------------- bad checkpoints

def _write_json(path: Path, obj):
    path.write_text(json.dumps(obj))


def _config_with(path: Path, **changes):
    raw = json.loads((path / "config.json").read_text())
    raw.update(changes)
    _write_json(path / "config.json", raw)


def _weights_of(make) -> bytes:
    from safetensors.torch import save
    return save({k: v.contiguous() for k, v in make().state_dict().items()})


BAD_CHECKPOINTS = {
    # name: (how to spoil a good checkpoint directory, file named in the error, words in the error)
    "missing directory": (lambda p: None, "", "not a checkpoint directory"),
    "missing weights": (lambda p: (p / "model.safetensors").unlink(), "model.safetensors", "missing"),
    "missing config": (lambda p: (p / "config.json").unlink(), "config.json", "missing"),
    "empty weights": (lambda p: (p / "model.safetensors").write_bytes(b""), "model.safetensors", "corrupt"),
    "random-byte weights": (lambda p: (p / "model.safetensors").write_bytes(random.Random(1).randbytes(5000)),
                            "model.safetensors", "corrupt"),
    "truncated weights": (lambda p: (p / "model.safetensors").write_bytes(
        (p / "model.safetensors").read_bytes()[:3000]), "model.safetensors", "truncated"),
    "header longer than file": (lambda p: (p / "model.safetensors").write_bytes(
        (10**9).to_bytes(8, "little") + b"{}"), "model.safetensors", "corrupt"),
    "weights for another width": (lambda p: _config_with(p, dim=64), "model.safetensors", "config.json implies"),
    "weights of another architecture": (lambda p: (p / "model.safetensors").write_bytes(
        _weights_of(lambda: CompactCNN(CNNConfig(cnn_widths=(8,))))), "model.safetensors", "do not match"),
    "weights in another dtype": (lambda p: (p / "model.safetensors").write_bytes(
        _weights_of(lambda: ViTRM(tiny(combine="concat")).double())), "model.safetensors", "float64"),
    "shape-compatible config edit": (lambda p: _config_with(p, heads=4), "model.safetensors", "different config.json"),
    "unknown architecture": (lambda p: _config_with(p, arch="resnet9000"), "config.json", "unknown architecture"),
    "config not json": (lambda p: (p / "config.json").write_text("{'dim': 32"), "config.json", "not valid JSON"),
    "config a list": (lambda p: _write_json(p / "config.json", [1, 2]), "config.json", "JSON object"),
    "only pickles": (lambda p: [(p / "model.safetensors").unlink(), (p / "model.pt").write_bytes(b"\x80\x04N."),
                                (p / "optimizer.PTH").write_bytes(b"\x80\x04N.")],
                     "model.safetensors", "pickle"),
}


@pytest.mark.parametrize("case", BAD_CHECKPOINTS)
def test_a_bad_checkpoint_raises_checkpoint_error_naming_the_file_and_changes_nothing(case, tmp_path):
    spoil, file_name, words = BAD_CHECKPOINTS[case]
    path, _ = saved(tmp_path)
    if case == "missing directory":
        path = tmp_path / "nowhere"
    spoil(path)
    before = snapshot(tmp_path)
    with pytest.raises(CheckpointError) as caught:
        vitrm.load(path)
    assert str(path / file_name) in str(caught.value)
    assert words in str(caught.value)
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------- planted pickles

class _CreatesMarker:
    """Unpickling this object creates ``marker``: proof that a pickle was executed."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.open, (self.marker, "w")


def _pickle_payload(marker: Path) -> bytes:
    return pickle.dumps({"state_dict": _CreatesMarker(marker)})


def _torch_payload(marker: Path, file: Path):
    torch.save({"state_dict": {"w": torch.zeros(2)}, "hook": _CreatesMarker(marker)}, file)


def test_the_planted_payload_really_would_run(tmp_path):
    control = tmp_path / "control-marker"
    pickle.loads(_pickle_payload(control))
    assert control.exists()


def planted_checkpoints(tmp_path: Path, marker: Path) -> list[Path]:
    good, _ = saved(tmp_path, "good")
    config = (good / "config.json").read_text()
    dirs = []
    only_pickle = tmp_path / "only-pickle"
    only_pickle.mkdir()
    _torch_payload(marker, only_pickle / "model.pt")
    dirs.append(only_pickle)
    disguised = tmp_path / "pickle-named-safetensors"
    disguised.mkdir()
    (disguised / "model.safetensors").write_bytes(_pickle_payload(marker))
    (disguised / "config.json").write_text(config)
    dirs.append(disguised)
    torch_disguised = tmp_path / "torch-file-named-safetensors"
    torch_disguised.mkdir()
    _torch_payload(marker, torch_disguised / "model.safetensors")
    _torch_payload(marker, torch_disguised / "model.pt")
    (torch_disguised / "config.json").write_text(config)
    dirs.append(torch_disguised)
    return dirs


def test_a_planted_pickle_is_never_unpickled_by_load(tmp_path):
    marker = tmp_path / "marker"
    for folder in planted_checkpoints(tmp_path, marker):
        with pytest.raises(CheckpointError, match="model.safetensors"):
            vitrm.load(folder)
        assert not marker.exists(), folder


def test_a_planted_pickle_is_never_unpickled_by_the_cli(tmp_path):
    marker = tmp_path / "marker"
    image = tmp_path / "img.png"
    Image.new("RGB", (32, 32), (120, 30, 200)).save(image)

    def predict(folder: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "vitrm", "predict", "--checkpoint", str(folder), str(image)],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)

    only_pickle, _, torch_disguised = planted_checkpoints(tmp_path, marker)
    assert predict(tmp_path / "good").returncode == 0      # the CLI itself works
    for folder in (only_pickle, torch_disguised):
        done = predict(folder)
        assert done.returncode != 0
        assert "model.safetensors" in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert not marker.exists(), folder


# --------------------------------------------------------------------------- malicious config.json

MALICIOUS_CONFIGS = {
    "huge dim": (dict(dim=10**9), "dim"),
    "huge image": (dict(image_size=10**7), "image_size"),
    "huge depth": (dict(layers=10**8), "layers"),
    "negative size": (dict(dim=-32), "dim"),
    "zero heads": (dict(heads=0), "heads"),
    "fractional size": (dict(dim=32.5), "dim must be an integer"),
    "size as string": (dict(dim="32"), "dim must be an integer"),
    "size as bool": (dict(layers=True), "layers must be an integer"),
    "size as null": (dict(patch_size=None), "patch_size must be an integer"),
    "arch as number": (dict(arch=3), "arch must be a string"),
    "mean as string": (dict(mean="0.5"), "mean must be a list"),
    "extra key": (dict(run_this="import os"), "unknown keys"),
    "class names too few": (dict(class_names=["cat", "dog"]), "class_names has 2 names"),
    "class names not strings": (dict(class_names=list(range(10))), "class_names must be a list"),
    "wrong mean length": (dict(mean=[0.5]), "mean and std"),
    "zero std": (dict(std=[0.0, 1.0, 1.0]), "std"),
    "huge mlp ratio": (dict(mlp_ratio=1e9), "mlp_ratio"),
    "dropout of two": (dict(dropout=2), "dropout"),
    "patch larger than image": (dict(patch_size=64), "multiple of patch_size"),
    "conv stem without downsampling": (dict(tokenizer="conv", patch_size=1), "power of two"),
    "more conv stages than downsampling": (dict(tokenizer="conv", patch_size=4, conv_stages=3), "conv_stages"),
    "negative conv stages": (dict(tokenizer="conv", conv_stages=-1), "conv_stages"),
    "no latent updates": (dict(latent_updates=0), "latent_updates"),
    "unknown combine": (dict(combine="xor"), "combine"),
    "empty cnn": (dict(arch="cnn", cnn_widths=[]), "cnn_widths"),
    "cnn width of zero": (dict(arch="cnn", cnn_widths=[8, 0]), "cnn_widths"),
    "cnn budget exceeded": (dict(arch="cnn", cnn_widths=[4096] * 8), "parameters, over the limit"),
    "vit budget exceeded": (dict(arch="vit", dim=4096, heads=64, layers=512, mlp_ratio=16.0),
                            "parameters, over the limit"),
    "too many tokens for a vit": (dict(arch="vit", dim=4, heads=1, layers=1, image_size=1024, patch_size=1),
                                  "tokens per image"),
    "vit dim not divisible by heads": (dict(arch="vit", dim=30, heads=4), "not divisible by heads"),
    "too many tokens for few weights": (dict(dim=4, heads=1, layers=1, image_size=1024, patch_size=1),
                                        "tokens per image"),
    "attention maps of terabytes": (dict(dim=64, heads=64, layers=64, latent_updates=64, image_size=256,
                                         patch_size=8), "GiB of activations"),
    "cnn at full resolution": (dict(arch="cnn", image_size=1024, cnn_widths=[4096]), "GiB of activations"),
    "budget exceeded within ranges": (dict(dim=4096, heads=64, layers=512, mlp_ratio=16.0, image_size=1024,
                                           patch_size=1), "parameters, over the limit"),
}


@pytest.mark.parametrize("case", MALICIOUS_CONFIGS)
def test_a_malicious_config_is_refused_with_a_clear_error(case, tmp_path):
    changes, words = MALICIOUS_CONFIGS[case]
    path, _ = saved(tmp_path, make=MODELS.get(changes.get("arch"), MODELS["vitrm-concat-patch"]))
    _config_with(path, **changes)
    with pytest.raises(CheckpointError) as caught:
        vitrm.load(path)
    assert str(path / "config.json") in str(caught.value)
    assert words in str(caught.value)


@pytest.mark.parametrize("text, words", [
    ('{"std": [NaN, 1, 1]}', "finite"),
    ('{"dim": ' + "9" * 5000 + "}", "not valid JSON"),
    ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
    ("\xff\xfe not utf-8", "not valid JSON"),
])
def test_config_json_that_breaks_the_parser_is_refused(text, words, tmp_path):
    path, _ = saved(tmp_path)
    (path / "config.json").write_bytes(text.encode("latin-1"))
    with pytest.raises(CheckpointError, match=words):
        vitrm.load(path)


def test_the_parameter_estimate_tracks_the_real_count():
    for name, make in MODELS.items():
        model = make()
        actual = vitrm.num_parameters(model)
        assert actual / 2 <= estimate_parameters(model.config) <= actual * 2, name


def test_a_trillion_parameter_config_fails_fast_and_allocates_nothing_big(tmp_path):
    path, _ = saved(tmp_path)
    code = textwrap.dedent(f"""
        import dataclasses, json, sys, tracemalloc
        from testkit.oddfiles import peak_rss_mb, rss_mb
        import vitrm
        from vitrm.checkpoint import estimate_parameters
        path = {str(path)!r}
        raw = json.load(open(path + "/config.json"))
        config = vitrm.read_config(path)
        results = {{}}
        rss_before = rss_mb()
        tracemalloc.start()
        for name, changes in {{
            "out of range": dict(dim=2**17, heads=64, layers=64),
            "in range": dict(dim=4096, heads=64, layers=512, mlp_ratio=16.0, image_size=1024, patch_size=1),
        }}.items():
            asked = estimate_parameters(dataclasses.replace(config, **changes))
            json.dump({{**raw, **changes}}, open(path + "/config.json", "w"))
            try:
                vitrm.load(path)
                results[name] = ["loaded", asked]
            except vitrm.CheckpointError as e:
                results[name] = [str(e), asked]
        results["traced_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        results["rss_growth_mb"] = peak_rss_mb() - rss_before
        print(json.dumps(results))
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results["out of range"][1] > 10**12 and "outside the allowed range" in results["out of range"][0]
    assert results["in range"][1] > 100 * MAX_PARAMETERS and "over the limit" in results["in range"][0]
    assert results["traced_peak_mb"] < 50 and results["rss_growth_mb"] < 200, results


# --------------------------------------------------------------------------- averaging ("model soups")

def test_average_writes_the_elementwise_mean_and_records_its_sources(tmp_path):
    a = perturbed(ViTRM(tiny()), seed=1)
    b = perturbed(ViTRM(tiny()), seed=2)
    vitrm.save(a, tmp_path / "a")
    vitrm.save(b, tmp_path / "b")
    done = subprocess.run([sys.executable, "-m", "vitrm", "average", str(tmp_path / "a"), str(tmp_path / "b"),
                           "--out", str(tmp_path / "soup")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    soup = vitrm.load(tmp_path / "soup").state_dict()
    for k, v in a.state_dict().items():
        assert torch.allclose(soup[k], (v + b.state_dict()[k]) / 2), k
    recorded = json.loads((tmp_path / "soup" / "averaged_from.json").read_text())
    assert recorded["sources"] == [str(tmp_path / "a"), str(tmp_path / "b")]


def test_averaging_into_an_evaluated_checkpoint_drops_its_stale_metrics_and_keeps_the_rest(tmp_path):
    for name, seed in (("a", 1), ("b", 2)):
        vitrm.save(perturbed(ViTRM(tiny()), seed=seed), tmp_path / name)
    for name in ("metrics.json", "predictions.csv.gz", "predictions.csv", "train_log.csv"):
        (tmp_path / "a" / name).write_text("of the old weights")
    vitrm.checkpoint.average([tmp_path / "a", tmp_path / "b"], tmp_path / "a")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "averaged_from.json", "config.json", "model.safetensors", "train_log.csv"]


def test_averaging_refuses_one_checkpoint_or_two_architectures_in_one_clear_line(tmp_path):
    vitrm.save(ViTRM(tiny()), tmp_path / "a")
    vitrm.save(ViTRM(tiny(dim=48)), tmp_path / "wider")
    with pytest.raises(CheckpointError, match="at least two"):
        vitrm.checkpoint.average([tmp_path / "a"], tmp_path / "soup")
    done = subprocess.run([sys.executable, "-m", "vitrm", "average", str(tmp_path / "a"), str(tmp_path / "wider"),
                           "--out", str(tmp_path / "soup")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'wider'}: its config.json differs from {tmp_path / 'a'}'s; "
        "only checkpoints of one architecture can be averaged"]
    assert not (tmp_path / "soup").exists()
