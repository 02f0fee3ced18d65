"""``python -m vitrm import-reference``: a checkpoint of the paper's public training code, opened here.

``PaperModel`` below is that code's forward pass, written from its description (issue 26), not from
``vitrm.model``: a strided-conv patch embedding plus learned positions, learned ``y_init`` [1, 1, D]
and per-patch ``z_init`` [1, L, D], one block of pre-norm layers (nn.MultiheadAttention, an MLP
Linear(D, 2H) -> SwiGLU -> Linear(H, D)) with no closing norm, z updated from the block over
[x; y; z], y from the block over [y; z], and both heads reading y itself. Its random weights are
saved as that code saves ``best.pt``, imported through the command line, and the imported model must
give the same logits and halting probabilities at every step count 1..2N. Then everything the app
does is run on an imported model, and a file that carries code is refused without running it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import vitrm
from testkit.fakedata import write_imagefolder
from vitrm import reference
from vitrm.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
MODEL = dict(image_size=32, patch_size=4, in_chans=3, dim=32, num_heads=4, mlp_hidden_dim=48, n_latent_steps=2,
             t_deep=3, n_supervision=6, halt_threshold=0.5, dropout=0.1, latent_dropout=0.05, token_dropout=0.1)


# --------------------------------------------------------------------------- the paper's model, from its description

class SwiGLU(nn.Module):
    def forward(self, x):
        a, b = x.chunk(2, dim=-1)
        return F.silu(a) * b


class NamedMLP(nn.Module):
    """The same MLP with named Linears, as the paper's code might spell it: the importer tells them apart by shape."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, 2 * hidden), SwiGLU(), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class PatchEmbed(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.proj = nn.Conv2d(m["in_chans"], m["dim"], m["patch_size"], stride=m["patch_size"])
        self.pos_embed = nn.Parameter(torch.randn(1, (m["image_size"] // m["patch_size"]) ** 2, m["dim"]) * 0.02)

    def forward(self, images):
        return self.proj(images).flatten(2).transpose(1, 2) + self.pos_embed


class Layer(nn.Module):
    def __init__(self, m, named_mlp):
        super().__init__()
        d, h = m["dim"], m["mlp_hidden_dim"]
        self.norm1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, m["num_heads"], dropout=m["dropout"], batch_first=True)
        self.norm2 = nn.LayerNorm(d)
        self.mlp = NamedMLP(d, h) if named_mlp else nn.Sequential(
            nn.Linear(d, 2 * h), SwiGLU(), nn.Dropout(m["dropout"]), nn.Linear(h, d), nn.Dropout(m["dropout"]))

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class Block(nn.Module):
    def __init__(self, m, layers, named_mlp):
        super().__init__()
        self.layers = nn.ModuleList(Layer(m, named_mlp) for _ in range(layers))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x                                  # no closing norm


class PaperModel(nn.Module):
    def __init__(self, m, num_classes, layers=3, named_mlp=False):
        super().__init__()
        self.m = m
        L, d = (m["image_size"] // m["patch_size"]) ** 2, m["dim"]
        self.patch_embed = PatchEmbed(m)
        self.y_init = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.z_init = nn.Parameter(torch.randn(1, L, d) * 0.02)
        self.block = Block(m, layers, named_mlp)
        self.cls_head = nn.Linear(d, num_classes)
        self.halt_head = nn.Linear(d, 1)

    def forward(self, images, steps):
        """[(class logits [B, C], halting probability [B]) after each step 1..steps]."""
        x = self.patch_embed(images)
        B, L = x.shape[:2]
        y, z = self.y_init.expand(B, -1, -1), self.z_init.expand(B, -1, -1)
        out = []
        for _ in range(steps):
            for _ in range(self.m["n_latent_steps"]):
                z = self.block(torch.cat([x, y, z], dim=1))[:, -L:]      # the paper's order: [x; y; z]
            y = self.block(torch.cat([y, z], dim=1))[:, :1]
            out.append((self.cls_head(y[:, 0]), torch.sigmoid(self.halt_head(y[:, 0])).squeeze(-1)))
        return out


@torch.no_grad()
def paper_attention(net, images):
    """nn.MultiheadAttention's own weights [B, H, L, L] in the first layer of step 1's first latent update and of
    its answer update, the latent one with its tokens put in ViTRM Lab's order [y, x, z]."""
    x = net.patch_embed(images)
    B, L = x.shape[:2]
    y, z = net.y_init.expand(B, -1, -1), net.z_init.expand(B, -1, -1)
    layer = net.block.layers[0]

    def weights(seq):
        h = layer.norm1(seq)
        return layer.attn(h, h, h, need_weights=True, average_attn_weights=False)[1]

    order = [L, *range(L), *range(L + 1, 2 * L + 1)]           # theirs is [x, y, z]
    latent = weights(torch.cat([x, y, z], dim=1))[:, :, order][:, :, :, order]
    for _ in range(net.m["n_latent_steps"]):
        z = net.block(torch.cat([x, y, z], dim=1))[:, -L:]
    return latent, weights(torch.cat([y, z], dim=1))


def paper_model(seed, num_classes, model=MODEL, **kwargs) -> PaperModel:
    """Random weights, every one of them moved off its initial value (LayerNorm gains and biases too)."""
    torch.manual_seed(seed)
    net = PaperModel(model, num_classes, **kwargs)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return net.eval()


def best_pt(path, net, dataset="cifar10", change=None, **extra) -> Path:
    """The dict the paper's code saves with torch.save (after ``change``, when given, has edited it)."""
    source = {"config": {"dataset": {"name": dataset, "root": "./data", "batch_size": 128},
                         "model": dict(net.m), "training": {"epochs": 100, "lr": 1e-3}},
              "model_state": net.state_dict(), "epoch": 87, "test_accuracy": 0.8123,
              "test_f1": np.float64(0.8077), **extra}        # a metric computed with numpy is a numpy scalar
    if change is not None:
        change(source)
    torch.save(source, path)
    return Path(path)


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "vitrm", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def imported(tmp_path, net, dataset="cifar10", name="mine", *flags) -> Path:
    src = best_pt(tmp_path / "best.pt", net, dataset)
    result = run_cli("import-reference", src, "--out", tmp_path / name, *flags)
    assert result.returncode == 0, result.stderr
    return tmp_path / name


# --------------------------------------------------------------------------- exactness

@pytest.mark.parametrize("dataset, classes, model, named_mlp", [
    ("cifar10", 10, MODEL, False),
    ("cifar100", 100, MODEL | dict(patch_size=8, dim=24, num_heads=3, mlp_hidden_dim=40, n_latent_steps=3,
                                   t_deep=2), True),
], ids=["cifar10", "cifar100"])
def test_an_imported_model_gives_the_sources_logits_and_halting_at_every_step(tmp_path, dataset, classes, model,
                                                                            named_mlp):
    net = paper_model(0, classes, model, named_mlp=named_mlp)
    out = imported(tmp_path, net, dataset)
    ours = vitrm.load(out)
    N = model["t_deep"]
    assert ours.config.trained_steps == N and ours.config.num_classes == classes
    assert ours.config.class_names == reference.DATASETS[dataset]
    assert (ours.config.mean, ours.config.std) == (vitrm.model.CIFAR10_MEAN, vitrm.model.CIFAR10_STD)
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        theirs = net(images, 2 * N)
    trace = ours.trace(images, steps=2 * N)
    for step in range(1, 2 * N + 1):
        logits, halt = theirs[step - 1]
        torch.testing.assert_close(trace.logits[step - 1], logits, atol=1e-4, rtol=0)
        torch.testing.assert_close(trace.halt[step - 1], halt, atol=1e-4, rtol=0)
        torch.testing.assert_close(ours(images, steps=step), logits, atol=1e-4, rtol=0)
    # The attention view's maps are those of the packed in_proj weights, token for token.
    latent, answer = paper_attention(net, images)
    torch.testing.assert_close(trace.attention.latent[0, 0, 0], latent, atol=1e-5, rtol=0)
    torch.testing.assert_close(trace.attention.answer[0, 0], answer, atol=1e-5, rtol=0)
    # The comparison has teeth: the answer moves between steps, and halting is not saturated.
    assert (theirs[0][0] - theirs[-1][0]).abs().max() > 1e-2
    assert ((trace.halt > 0.01) & (trace.halt < 0.99)).float().mean() > 0.5


def test_the_card_records_the_source_its_own_test_figures_and_how_they_were_chosen(tmp_path):
    net = paper_model(1, 10)
    out = imported(tmp_path, net)
    card = (out / "README.md").read_text()
    assert reference.sha256(tmp_path / "best.pt") in card and "`best.pt`" in card
    assert "test accuracy 0.8123" in card and "test F1 0.8077" in card and "epoch 87" in card
    assert ("Chosen on the test set by the paper's code (best test epoch), not comparable with ViTRM Lab's "
            "validation-chosen figures") in card
    assert "n_supervision=6" in card and "halt_threshold=0.5" in card
    assert "CIFAR-10's mean and std" in card


def test_class_names_can_come_from_a_file_one_per_line(tmp_path):
    names = [f"kind {i}" for i in range(10)]
    (tmp_path / "names.txt").write_text("\n".join(names) + "\n\n")
    out = imported(tmp_path, paper_model(2, 10), "my-own-data", "mine", "--class-names", tmp_path / "names.txt")
    assert list(vitrm.load(out).config.class_names) == names


# --------------------------------------------------------------------------- refusals

class Payload:
    """Unpickling this runs ``touch MARKER`` (with an unsafe loader)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_file_that_carries_code_is_refused_without_running_it_and_nothing_is_written(tmp_path):
    marker, out = tmp_path / "MARKER", tmp_path / "mine"
    src = best_pt(tmp_path / "best.pt", paper_model(0, 10), hook=Payload(marker))
    result = run_cli("import-reference", src, "--out", out)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "system" in result.stderr, result.stderr
    assert result.stdout == ""
    assert not marker.exists() and not out.exists()


def _refused(capsys, args) -> str:
    assert main(["import-reference", *map(str, args)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("change, words", [
    (lambda s: s["model_state"].__setitem__("z_init", torch.zeros(1, 5, 32)), "'z_init' has shape (1, 5, 32)"),
    (lambda s: s["model_state"].pop("block.layers.1.attn.in_proj_weight"),
     "lacks 'block.layers.1.attn.in_proj_weight'"),
    (lambda s: s["model_state"].__setitem__("block.norm.weight", torch.ones(32)),
     "does not have: ['block.norm.weight']"),
    (lambda s: s["config"]["model"].__setitem__("use_rope", True), "does not know (['use_rope'])"),
    (lambda s: s["config"]["model"].pop("t_deep"), "config.model.t_deep must be an integer"),
    (lambda s: s["config"]["dataset"].__setitem__("name", "imagenet"), "pass --class-names"),
    (lambda s: s["model_state"]["y_init"].fill_(float("nan")), "non-finite"),
    (lambda s: s.__setitem__("model_state", [1, 2]), "non-empty dict of tensors"),
], ids=["shape", "missing", "extra", "unknown-key", "no-t_deep", "unknown-dataset", "nan", "no-state"])
def test_a_source_that_does_not_match_the_papers_model_is_refused_by_name(tmp_path, capsys, change, words):
    src = best_pt(tmp_path / "best.pt", paper_model(0, 10), change=change)
    err = _refused(capsys, [src, "--out", tmp_path / "mine"])
    assert words in err
    assert not (tmp_path / "mine").exists()


def test_an_oversized_file_a_non_checkpoint_and_a_full_out_directory_are_refused(tmp_path, capsys, monkeypatch):
    src = best_pt(tmp_path / "best.pt", paper_model(0, 10))
    monkeypatch.setattr(reference, "MAX_SOURCE_BYTES", src.stat().st_size - 1)
    assert "over the limit" in _refused(capsys, [src, "--out", tmp_path / "a"])
    monkeypatch.undo()
    (tmp_path / "junk.pt").write_bytes(b"not a zip, not a pickle")
    assert "not a readable torch checkpoint" in _refused(capsys, [tmp_path / "junk.pt", "--out", tmp_path / "b"])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    assert "not an empty directory" in _refused(capsys, [src, "--out", tmp_path / "full"])
    (tmp_path / "names.txt").write_text("a\nb\n")
    assert "2 class names for a cls_head of 10" in _refused(
        capsys, [src, "--out", tmp_path / "c", "--class-names", tmp_path / "names.txt"])
    assert not any((tmp_path / d).exists() for d in ("a", "b", "c"))
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]


# --------------------------------------------------------------------------- training the paper's variant here

def test_the_papers_variant_trains_here_from_the_command_line(tmp_path):
    data = write_imagefolder(tmp_path / "data", ("cat", "dog", "ship"), train_per_class=8, test_per_class=2)
    variant = ["model.combine=concat", "model.mlp=swiglu", "model.mlp_hidden=24", "model.block_norm=false",
               "model.head_norm=false", "model.type_embed=false"]
    sets = ["model.dim=16", "model.heads=2", "model.layers=1", "model.trained_steps=2", "model.latent_updates=1",
            "val_size=6", "batch_size=6", "eval_batch_size=64", "threads=1", f"cache_dir={tmp_path / 'cache'}",
            "augment.crop_padding=0", "augment.flip=false", *variant]
    result = run_cli("train", "--data", f"imagefolder:{data}", "--out", tmp_path / "run", "--epochs", 1, "--quiet",
                     *[a for s in sets for a in ("--set", s)])
    assert result.returncode == 0, result.stderr
    model = vitrm.load(tmp_path / "run")
    cfg = model.config
    assert (cfg.mlp, cfg.mlp_hidden, cfg.block_norm, cfg.head_norm, cfg.type_embed) == ("swiglu", 24, False, False,
                                                                                       False)
    assert model.block.layers[0].mlp[0].weight.shape == (48, 16)
    assert len(pd.read_csv(tmp_path / "run" / "train_log.csv")) == 1
    assert json.loads((tmp_path / "run" / "train_config.json").read_text())["model"]["mlp"] == "swiglu"


# --------------------------------------------------------------------------- the app and the analyses on an import

@pytest.fixture(scope="module")
def paper_lab(tmp_path_factory):
    """checkpoints/paper-cifar10: a random paper model imported through the command line, then evaluated with
    ``python -m vitrm evaluate`` on an image folder of the gallery's CIFAR-10 images."""
    from test_app import gallery_imagefolder
    root = tmp_path_factory.mktemp("paper-lab")
    checkpoints, data = root / "checkpoints", root / "data"
    gallery_imagefolder(data)
    src = best_pt(root / "best.pt", paper_model(3, 10))
    result = run_cli("import-reference", src, "--out", checkpoints / "paper-cifar10")
    assert result.returncode == 0, result.stderr
    assert main(["evaluate", "--checkpoint", checkpoints / "paper-cifar10", "--data", f"imagefolder:{data}",
                 "--cache-dir", root / "cache", "--quiet"]) == 0
    return checkpoints


@pytest.fixture
def paper_app(paper_lab, monkeypatch):
    from test_app import app_on
    return app_on(paper_lab, monkeypatch)


def test_evaluate_on_an_imported_model_records_what_its_own_trace_answers(paper_lab):
    model = vitrm.load(paper_lab / "paper-cifar10")
    metrics = json.loads((paper_lab / "paper-cifar10" / "metrics.json").read_text())
    table = vitrm.read_predictions(paper_lab / "paper-cifar10")
    steps = 2 * model.config.trained_steps
    assert len(metrics["top1_by_step"]) == steps and len(table) == metrics["num_images"] == 20
    data = paper_lab.parent / "data"
    images = torch.cat([model.preprocess(vitrm.load_image(data / path)) for path in table["path"]])
    trace = model.trace(images, steps=steps, attention=False)
    for step in range(1, steps + 1):
        assert table[f"pred_{step}"].tolist() == trace.logits[step - 1].argmax(-1).tolist()
        assert table[f"halt_{step}"].to_numpy() == pytest.approx(trace.halt[step - 1].numpy(), abs=1e-5)
        top1 = float((trace.logits[step - 1].argmax(-1) == torch.tensor(table["label"].to_numpy())).float().mean())
        assert metrics["top1_by_step"][step - 1] == pytest.approx(top1)


def test_every_explore_view_works_on_an_imported_model(paper_app, paper_lab):
    from test_app import GALLERY, expected_at, metrics, run, select_models
    key = str(paper_lab / "paper-cifar10")
    at = select_models(run(paper_app), paper_lab, "paper-cifar10")
    at.selectbox(key="gallery_file").set_value("cat_0003.jpg")
    run(at)
    for step in (1, 3, 6):
        at.slider(key=f"step::{key}").set_value(step)
        run(at)
        top, prob = expected_at(paper_lab / "paper-cifar10", GALLERY / "cat_0003.jpg", step)
        assert metrics(at)[f"Top class at step {step}"] == top and metrics(at)["Probability"] == prob
    at.radio(key="explore_view").set_value("Evolving state")
    run(at)
    at.radio(key="z_measure").set_value(at.radio(key="z_measure").options[1])
    run(at)
    assert len(at.get("plotly_chart")) == 3
    at.radio(key="explore_view").set_value("Attention")
    run(at)
    at.selectbox(key=f"att_layer::{key}").set_value(at.selectbox(key=f"att_layer::{key}").options[-1])
    at.selectbox(key=f"att_head::{key}").set_value("head 4")
    for call in range(len(at.selectbox(key=f"att_call::{key}").options)):
        at.selectbox(key=f"att_call::{key}").set_value(call)
        run(at)
    rollout = next(c.value for c in at.caption if "rollout" in c.value.lower())
    assert abs(sum(int(s.rstrip("%")) for s in rollout.split() if s.endswith("%")) - 100) <= 2, rollout
    at.radio(key="explore_view").set_value("Attribution")
    run(at)
    next(b for b in at.button if b.label.startswith("Compute attributions")).click()
    run(at)
    timed = next(m.value for m in at.markdown if m.value.startswith("Attributions for"))
    for name in ("Integrated Gradients", "Saliency", "GradientShap", "Occlusion"):
        assert f"**{name}**" in timed, timed
    at.switch_page("screens/how_it_works.py")
    run(at)
    assert "[y, x, z]" in at.get("graphviz_chart")[0].proto.spec


def test_every_analysis_view_and_the_error_table_work_on_an_imported_model(paper_app, paper_lab):
    from test_app import run, select_models

    from app.views import error_table
    key = str(paper_lab / "paper-cifar10")
    at = select_models(run(paper_app), paper_lab, "paper-cifar10")
    at.switch_page("screens/dataset.py")
    run(at)
    for section in at.radio(key="analysis_view").options:
        at.radio(key="analysis_view").set_value(section)
        run(at)
    at.radio(key="analysis_view").set_value(error_table.SECTION)
    run(at)
    at.selectbox(key=f"errors::{key}::size").set_value(25)
    run(at)
    assert len(at.dataframe[0].value) == len(vitrm.read_predictions(paper_lab / "paper-cifar10"))


def test_the_class_directions_of_a_model_without_a_head_norm_are_the_steepest_ones(paper_lab):
    from vitrm.analysis import class_directions
    model = vitrm.load(paper_lab / "paper-cifar10")
    directions = class_directions(model)
    unit = directions / directions.norm(dim=-1, keepdim=True)
    y = torch.randn(model.config.dim)
    with torch.no_grad():
        gain = torch.stack([model.heads((y + u)[None])[0][0] - model.heads(y[None])[0][0] for u in unit])  # [u, c]
    # Class c's logit rises most along class c's own direction (the head reads y itself: no norm in between).
    assert torch.equal(gain.argmax(0), torch.arange(model.config.num_classes))


def test_every_attribution_method_explains_an_imported_model_run_to_each_step(paper_lab):
    from vitrm.attribution import METHODS, StepModel, attribute
    model = vitrm.load(paper_lab / "paper-cifar10")
    torch.manual_seed(0)
    images = torch.randn(2, 3, 32, 32)
    trace = model.trace(images, steps=4, attention=False)
    with torch.no_grad():
        for t in (1, 4):
            torch.testing.assert_close(StepModel(model, t)(images), trace.logits[t - 1], atol=1e-4, rtol=0)
    for method in sorted(METHODS):
        result = attribute(model, images, steps=4, method=method)
        assert result.maps.shape == (2, 32, 32) and torch.isfinite(result.maps).all() and result.maps.abs().sum() > 0
        assert result.target.tolist() == trace.probs[-1].argmax(-1).tolist()
