"""Specification of the ViTRM, its Trace, preprocessing and the two baselines."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from vitrm import CNNConfig, CompactCNN, ViT, ViTConfig, ViTRM, ViTRMConfig, num_parameters, vit_config_for
from vitrm.config import parse_model_config
from vitrm.train import TrainConfig, step_weights, supervision_loss

B, S = 3, 3


def tiny(**overrides) -> ViTRMConfig:
    base = dict(dim=32, heads=2, trained_steps=2, latent_updates=2)
    return ViTRMConfig(**{**base, **overrides})


VARIANTS = [pytest.param(dict(combine=c, tokenizer=t), id=f"{c}-{t}")
            for c in ("concat", "add") for t in ("patch", "conv")] + [
    pytest.param(dict(tokenizer="conv", patch_size=8, conv_stages=1), id="add-light-stem"),
    pytest.param(dict(combine="concat", mlp="swiglu", mlp_hidden=40, block_norm=False, head_norm=False,
                      type_embed=False), id="paper")]
PAPER = dict(combine="concat", mlp="swiglu", mlp_hidden=40, block_norm=False, head_norm=False, type_embed=False)


def model_and_images(seed=0, batch=B, **overrides):
    torch.manual_seed(seed)
    model = ViTRM(tiny(**overrides)).eval()
    return model, torch.randn(batch, 3, model.config.image_size, model.config.image_size)


# --------------------------------------------------------------------------- shapes

@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_gives_float_logits_per_image(variant):
    model, images = model_and_images(**variant)
    logits = model(images)
    assert logits.shape == (B, 10) and logits.dtype == torch.float32


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_trace_field_has_the_documented_shape(variant):
    model, images = model_and_images(**variant)
    cfg = model.config
    T, D, C, H, k, n = cfg.num_tokens, cfg.dim, cfg.num_classes, cfg.heads, cfg.layers, cfg.latent_updates
    trace = model.trace(images, steps=S)

    assert trace.steps == S
    for name, shape in [("logits", (S, B, C)), ("probs", (S, B, C)), ("halt", (S, B)), ("y", (S, B, D)),
                        ("z", (S, B, T, D)), ("y_init", (B, D)), ("z_init", (B, T, D))]:
        tensor = getattr(trace, name)
        assert tensor.shape == shape, name
        assert tensor.dtype == torch.float32, name
    assert torch.allclose(trace.probs, trace.logits.softmax(-1))
    assert torch.allclose(trace.probs.sum(-1), torch.ones(S, B))
    assert ((trace.halt > 0) & (trace.halt < 1)).all()
    assert trace.y_update_norm().shape == (S, B) and trace.z_update_norm().shape == (S, B)

    L = 2 * T + 1 if cfg.combine == "concat" else T + 1
    maps = trace.attention
    assert maps.latent.shape == (S, n, k, B, H, L, L)
    assert maps.answer.shape == (S, k, B, H, T + 1, T + 1)
    assert maps.patch_offset_latent == (T + 1 if cfg.combine == "concat" else 1)
    for weights in (maps.latent, maps.answer):
        assert (weights >= 0).all()
        assert torch.allclose(weights.sum(-1), torch.ones(weights.shape[:-1]), atol=1e-5)


def test_the_update_norms_measure_the_change_from_the_previous_state():
    model, images = model_and_images()
    trace = model.trace(images, steps=S)
    assert torch.allclose(trace.y_update_norm()[0], (trace.y[0] - trace.y_init).norm(dim=-1))
    assert torch.allclose(trace.y_update_norm()[2], (trace.y[2] - trace.y[1]).norm(dim=-1))
    rms = (trace.z[1] - trace.z[0]).norm(dim=-1).pow(2).mean(-1).sqrt()
    assert torch.allclose(trace.z_update_norm()[1], rms)


def test_the_trace_can_skip_attention_and_still_match():
    model, images = model_and_images()
    with_maps, without = model.trace(images, steps=S), model.trace(images, steps=S, attention=False)
    assert without.attention is None
    assert torch.allclose(with_maps.logits, without.logits, atol=1e-5)


# --------------------------------------------------------------------------- steps

def test_the_parameter_count_does_not_depend_on_steps():
    counts = {steps: num_parameters(ViTRM(tiny(trained_steps=steps))) for steps in (1, 4, 16)}
    assert len(set(counts.values())) == 1
    model, images = model_and_images()
    before = num_parameters(model)
    model(images, steps=12)
    assert num_parameters(model) == before


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_trace_step_equals_forward_run_to_that_step(variant):
    model, images = model_and_images(**variant)
    trace = model.trace(images, steps=7)
    for steps in (1, 2, 5, 7):
        assert torch.allclose(trace.logits[steps - 1], model(images, steps), atol=1e-4), steps


def test_the_default_step_count_is_the_trained_one():
    model, images = model_and_images(trained_steps=3)
    assert torch.equal(model(images), model(images, 3))
    assert model.trace(images).steps == 3


def test_steps_far_beyond_the_trained_count_run_and_stay_finite():
    model, images = model_and_images()
    steps = 4 * model.config.trained_steps
    assert torch.isfinite(model(images, steps)).all()
    trace = model.trace(images, steps)
    assert trace.steps == steps
    for tensor in (trace.logits, trace.probs, trace.halt, trace.y, trace.z, trace.attention.answer):
        assert torch.isfinite(tensor).all()
    assert torch.allclose(trace.logits[-1], model(images, steps), atol=1e-4)


@pytest.mark.parametrize("steps", [0, -1, 1.5, 3.0, True, "2"])
def test_invalid_steps_raise_value_error(steps):
    model, images = model_and_images()
    with pytest.raises(ValueError, match="steps"):
        model(images, steps)
    with pytest.raises(ValueError, match="steps"):
        model.trace(images, steps)


def test_numpy_integer_steps_are_accepted():
    model, images = model_and_images()
    assert torch.equal(model(images, np.int64(3)), model(images, 3))


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_prediction_does_not_depend_on_the_rest_of_the_batch(variant):
    model, images = model_and_images(batch=6, **variant)
    batched, trace = model(images, 3), model.trace(images, 3)
    for i in (0, 4):
        alone = model.trace(images[i:i + 1], 3)
        assert torch.allclose(model(images[i:i + 1], 3)[0], batched[i], atol=1e-5)
        assert torch.allclose(alone.probs[:, 0], trace.probs[:, i], atol=1e-5)
        assert torch.allclose(alone.attention.answer[:, :, 0], trace.attention.answer[:, :, i], atol=1e-5)


def test_forward_uses_sdpa_and_only_the_trace_computes_weights(monkeypatch):
    model, images = model_and_images()
    calls = []
    real = F.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counting)
    cfg = model.config
    model(images, steps=3)
    assert len(calls) == 3 * cfg.block_calls_per_step * cfg.layers
    calls.clear()
    model.trace(images, steps=3)
    assert calls == []


# --------------------------------------------------------------------------- construction

@pytest.mark.parametrize("overrides, message", [
    (dict(combine="multiply"), "combine"),
    (dict(dim=30, heads=4), "divisible"),
    (dict(latent_updates=0), "latent_updates"),
    (dict(tokenizer="conv", patch_size=1), "power of two"),
    (dict(tokenizer="conv", patch_size=6, image_size=36), "power of two"),
    (dict(tokenizer="pixels"), "tokenizer"),
    (dict(tokenizer="conv", patch_size=4, conv_stages=3), "conv_stages"),
])
def test_an_impossible_config_is_refused_at_construction(overrides, message):
    with pytest.raises(ValueError, match=message):
        ViTRM(tiny(**overrides))


@pytest.mark.parametrize("stages, convs", [(0, 3), (3, 3), (2, 3), (1, 2)])
def test_a_lighter_stem_has_fewer_conv_stages_and_a_patch_embedding_for_the_rest(stages, convs):
    # conv_stages=0 is the full CCT stem (three 3x3 stages for patch 8), as every older checkpoint has;
    # fewer stages end in one linear patch embedding (kernel = stride) to reach the same 4x4 grid.
    model = ViTRM(tiny(tokenizer="conv", patch_size=8, conv_stages=stages))
    conv = [m for m in model.tokenizer if isinstance(m, torch.nn.Conv2d)]
    assert len(conv) == convs
    assert [c.kernel_size for c in conv].count((3, 3)) == (stages or 3)
    assert model.embed(torch.randn(2, 3, 32, 32)).shape == (2, 16, 32)


@pytest.mark.parametrize("cfg", [ViTRMConfig(class_names=tuple("abcdefghij"), combine="concat"),
                                 ViTConfig(layers=5, tokenizer="conv", patch_size=8), CNNConfig(cnn_widths=(8, 16))],
                         ids=["vitrm", "vit", "cnn"])
def test_each_architectures_config_survives_a_dict_round_trip(cfg):
    raw = cfg.to_dict()
    assert raw["arch"] == cfg.arch and set(raw) == type(cfg).field_names() | {"arch"}
    assert parse_model_config(raw) == cfg


def test_a_config_without_the_variant_fields_is_the_default_architecture():
    # Every config.json written before the fields existed lacks them: it must build what it always built.
    raw = tiny(combine="concat").to_dict()
    for key in ("mlp", "mlp_hidden", "block_norm", "head_norm", "type_embed"):
        raw.pop(key)
    cfg = parse_model_config(raw)
    assert (cfg.mlp, cfg.mlp_hidden, cfg.block_norm, cfg.head_norm, cfg.type_embed) == ("gelu", 0, True, True, True)
    names = set(ViTRM(cfg).state_dict())
    assert {"block.norm.weight", "head_norm.weight", "type_embed", "block.layers.0.mlp.0.weight"} <= names


def test_the_papers_variant_has_a_swiglu_mlp_and_no_closing_norm_head_norm_or_type_embedding():
    torch.manual_seed(0)
    model = ViTRM(tiny(**PAPER)).eval()
    names = set(model.state_dict())
    assert not any(n.startswith(("block.norm", "head_norm", "type_embed")) for n in names), names
    mlp = model.block.layers[0].mlp
    assert (mlp[0].weight.shape, mlp[3].weight.shape) == ((80, 32), (32, 40))
    h = torch.randn(5, 32)
    a, b = mlp[0](h).chunk(2, dim=-1)
    assert torch.allclose(mlp(h), mlp[3](F.silu(a) * b))
    # No norm before the heads: the logits are a Linear of y itself.
    y = torch.randn(4, 32)
    logits, halt = model.heads(y)
    assert torch.allclose(logits, model.head(y)) and torch.allclose(halt, model.halt_head(y).squeeze(-1))


def test_without_a_closing_norm_the_block_output_is_the_last_layers_residual_stream():
    torch.manual_seed(0)
    normed = ViTRM(tiny()).block
    block = ViTRM(tiny(block_norm=False)).block
    block.load_state_dict(normed.state_dict(), strict=False)      # the same layers, without the norm
    x = torch.randn(2, 5, 32)
    out = x
    for layer in block.layers:
        out, _ = layer(out)
    assert torch.equal(block(x)[0], out)
    assert torch.allclose(normed(x)[0], normed.norm(out)) and not torch.allclose(normed(x)[0], out)


def test_concat_without_a_type_embedding_reads_z_from_the_same_positions_in_any_token_order():
    # The paper's code attends over [x, y, z] and this model over [y, x, z]: with no position information
    # inside the block, the z it reads from the last T positions is the same.
    model, images = model_and_images(**PAPER)
    x = model.embed(images)
    y, z = model.initial_state(len(images))
    ours, _ = model.latent_update(x, y, z)
    theirs, _ = model.block(torch.cat([x, y[:, None], z], dim=1))
    assert torch.allclose(ours, theirs[:, -z.shape[1]:], atol=1e-6)


@pytest.mark.parametrize("overrides, words", [
    (dict(mlp="relu"), "unknown mlp"),
    (dict(mlp_hidden=16 * 32 + 1), "mlp_hidden"),
    (dict(mlp_hidden=-1), "mlp_hidden"),
    (dict(block_norm=1), "block_norm must be true or false"),
    (dict(type_embed="no"), "type_embed must be true or false"),
    (dict(mlp=1), "mlp must be a string"),
])
def test_a_variant_field_out_of_its_rules_is_refused_by_name(overrides, words):
    with pytest.raises(ValueError, match=words):
        parse_model_config(tiny().to_dict() | overrides)


def test_the_parameter_estimate_counts_swiglus_wider_first_linear():
    from vitrm.config import estimate_parameters
    gelu, swiglu = tiny(mlp_hidden=64), tiny(mlp_hidden=64, mlp="swiglu")
    grown = num_parameters(ViTRM(swiglu)) - num_parameters(ViTRM(gelu))
    assert grown == swiglu.layers * (32 * 64 + 64)
    assert estimate_parameters(swiglu) - estimate_parameters(gelu) == swiglu.layers * 32 * 64


def test_the_effective_depth_counts_every_layer_application():
    cfg = tiny(trained_steps=4, latent_updates=2, layers=3)
    assert cfg.effective_depth == 4 * (2 + 1) * 3
    assert ViTConfig(layers=7).effective_depth == 7 and CNNConfig().effective_depth == 0


def test_the_baselines_configs_hold_only_what_they_read_and_answer_in_one_step():
    assert {"latent_updates", "combine", "trained_steps", "cnn_widths"}.isdisjoint(ViTConfig.field_names())
    assert {"dim", "heads", "layers", "tokenizer", "trained_steps"}.isdisjoint(CNNConfig.field_names())
    assert ViTConfig().trained_steps == CNNConfig().trained_steps == 1


# --------------------------------------------------------------------------- preprocessing

@pytest.mark.parametrize("size", [(1, 1), (7, 300), (32, 32), (500, 200)])
@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P", "CMYK", "I;16", "1"])
def test_preprocess_turns_any_pil_image_into_a_normalized_batch(size, mode):
    model = ViTRM(tiny())
    batch = model.preprocess(Image.new(mode, size))
    assert batch.shape == (1, 3, 32, 32) and batch.dtype == torch.float32
    assert torch.isfinite(batch).all()


def test_preprocess_normalizes_with_the_config_mean_and_std():
    cfg = tiny(mean=(0.5, 0.25, 0.125), std=(0.5, 0.25, 0.2))
    model = ViTRM(cfg)
    colour = (200, 100, 30)
    batch = model.preprocess([Image.new("RGB", (64, 48), colour), Image.new("RGB", (32, 32), (0, 0, 0))])
    assert batch.shape == (2, 3, 32, 32)
    for c in range(3):
        expected = (colour[c] / 255 - cfg.mean[c]) / cfg.std[c]
        assert torch.allclose(batch[0, c], torch.full((32, 32), expected), atol=1e-6)
        assert torch.allclose(batch[1, c], torch.full((32, 32), -cfg.mean[c] / cfg.std[c]), atol=1e-6)


def test_preprocess_resizes_to_the_configured_image_size():
    model = ViTRM(tiny(image_size=16))
    assert model.preprocess(Image.new("RGB", (100, 60))).shape == (1, 3, 16, 16)


def test_preprocess_refuses_an_empty_list_and_non_images():
    model = ViTRM(tiny())
    with pytest.raises(ValueError):
        model.preprocess([])
    with pytest.raises(TypeError, match="load_image"):
        model.preprocess("cat.png")


# --------------------------------------------------------------------------- deep supervision

def test_deep_supervision_returns_every_step_and_matches_forward():
    model, images = model_and_images()
    logits, halt = model(images, steps=4, deep_supervision=True)
    assert logits.shape == (4, B, 10) and halt.shape == (4, B)
    assert torch.allclose(logits[-1], model(images, 4), atol=1e-5)
    logits, _ = model(images, steps=4, deep_supervision=True, no_grad_steps=1)
    assert logits.shape == (2, B, 10)
    assert torch.allclose(logits[-1], model(images, 4), atol=1e-5)
    with pytest.raises(ValueError, match="multiple"):
        model(images, steps=3, deep_supervision=True, no_grad_steps=1)


def test_deep_supervision_detaches_the_state_between_steps():
    model, images = model_and_images()
    logits, _ = model(images, steps=2, deep_supervision=True)
    logits[1].sum().backward()
    # The learned initial answer only reaches step 2 through y after step 1, which is detached.
    assert model.y_init.grad is None or not model.y_init.grad.any()
    assert model.head.weight.grad.abs().sum() > 0


def test_without_detaching_a_later_steps_loss_trains_the_earlier_steps():
    model, images = model_and_images()
    logits, _ = model(images, steps=2, deep_supervision=True, detach_between_steps=False)
    assert torch.allclose(logits[-1], model(images, 2), atol=1e-5)
    logits[1].sum().backward()
    assert model.y_init.grad is not None and model.y_init.grad.abs().sum() > 0


def test_step_weights_sum_to_one_and_linear_leans_on_the_last_step():
    assert step_weights(4, "uniform") == [0.25] * 4
    assert step_weights(4, "linear") == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert step_weights(1, "linear") == [1.0]
    assert step_weights(3, "last") == [0.0, 0.0, 1.0]


def test_the_loss_of_a_wrong_last_step_counts_more_under_linear_weighting():
    labels = torch.tensor([0])
    targets = F.one_hot(labels, 10).float()
    right, wrong = F.one_hot(labels, 10).float() * 10, F.one_hot(torch.tensor([1]), 10).float() * 10
    logits = torch.stack([right, wrong])          # step 1 right, step 2 wrong
    uniform = supervision_loss(logits, None, targets, labels, TrainConfig())[0]
    linear = supervision_loss(logits, None, targets, labels, TrainConfig(step_weighting="linear"))[0]
    assert linear > uniform


@pytest.mark.parametrize("combine", ["concat", "add"])
def test_deep_supervision_overfits_64_synthetic_images(combine):
    torch.manual_seed(0)
    cfg = ViTRMConfig(image_size=16, patch_size=4, dim=32, heads=2, trained_steps=2, latent_updates=1,
                      combine=combine)
    model = ViTRM(cfg)
    images = torch.randn(64, 3, 16, 16)
    labels = torch.randint(0, 10, (64,))
    targets = F.one_hot(labels, 10).float()
    train_cfg = TrainConfig(model=cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    accuracy = 0.0
    for iteration in range(400):
        model.train()
        logits, halt = model(images, deep_supervision=True)
        loss, _, _ = supervision_loss(logits, halt, targets, labels, train_cfg)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if iteration % 10 == 9:
            model.eval()
            with torch.no_grad():
                accuracy = (model(images).argmax(-1) == labels).float().mean().item()
            if accuracy == 1.0:
                break
    assert accuracy == 1.0


# --------------------------------------------------------------------------- baselines

def test_the_vit_baseline_has_one_layer_per_effective_depth():
    cfg = tiny(trained_steps=2, latent_updates=1, layers=2)
    vit_cfg = vit_config_for(cfg)
    assert vit_cfg.layers == cfg.effective_depth == 2 * 2 * 2
    assert (vit_cfg.dim, vit_cfg.heads, vit_cfg.tokenizer, vit_cfg.patch_size) == \
           (cfg.dim, cfg.heads, cfg.tokenizer, cfg.patch_size)
    vit = ViT(vit_cfg)
    assert len(vit.blocks.layers) == cfg.effective_depth
    assert num_parameters(vit) > num_parameters(ViTRM(cfg))


def baseline_models():
    torch.manual_seed(0)
    cfg = tiny(trained_steps=1, latent_updates=1, layers=1)
    return [ViT(vit_config_for(cfg)).eval(), CompactCNN(CNNConfig(cnn_widths=(8, 16))).eval()]


@pytest.mark.parametrize("model", baseline_models(), ids=["vit", "cnn"])
def test_baselines_count_as_one_step(model):
    images = torch.randn(B, 3, 32, 32)
    logits = model(images)
    assert logits.shape == (B, 10)
    assert torch.equal(model(images, 1), logits)
    for steps in (2, 0, True, 1.5):
        with pytest.raises(ValueError, match="steps must be 1"):
            model(images, steps)
        with pytest.raises(ValueError, match="steps must be 1"):
            model.trace(images, steps)
    trace = model.trace(images)
    assert trace.steps == 1 and trace.halt is None and trace.attention is None
    assert trace.probs.shape == (1, B, 10)
    assert torch.allclose(trace.logits[0], logits, atol=1e-5)
    ds_logits, ds_halt = model(images, deep_supervision=True)
    assert ds_logits.shape == (1, B, 10) and ds_halt is None
    assert model.preprocess(Image.new("RGB", (40, 40))).shape == (1, 3, 32, 32)


def test_the_cnn_baseline_is_batch_independent_in_eval_mode():
    cnn = baseline_models()[1]
    images = torch.randn(5, 3, 32, 32)
    assert torch.allclose(cnn(images[2:3])[0], cnn(images)[2], atol=1e-5)
