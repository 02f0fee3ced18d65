"""Write a checkpoint's model card (README.md) from the files that hold its measured figures.

    python -m vitrm.card checkpoints/vitrm-cifar10 --hardware "2-core CPU (no GPU)"

Every number on the card is read from ``config.json``, ``train_config.json``, ``train_log.csv``
and ``metrics.json`` in the same directory, never typed by hand, so the card cannot drift
from the measurements. The commands it prints are the ones each run recorded (``"command"`` in
its train_config.json, and in averaged_from.json for an average); a run without a record says so.
A ``NOTES.md`` beside them, if present, is appended as the card's notes.

Every file is read through the side-file gate (``vitrm.sidefiles``) with one budget for the checkpoint:
bounded, checked against its schema, never through a link that leads out of the checkpoint.
"""

from __future__ import annotations

import argparse
import platform
import shlex
from pathlib import Path

from . import checkpoint as ckpt, sidefiles
from .provenance import ARCH_NAMES, data_description as describe
from .steps import default_steps
from .train import TRAIN_CONFIG


def _pct(x) -> str:
    return f"{100 * float(x):.2f}%"


def data_description(spec: str) -> str:
    return describe(spec, show_path=True)


def render_card(path: Path, hardware: str) -> str:
    path = Path(path)
    config = ckpt.read_config(path)
    params = sum(p.numel() for p in ckpt.load(path).parameters())
    budget = sidefiles.Budget(path)
    train_cfg = sidefiles.read_train_config(path, budget)
    metrics = sidefiles.read_metrics(path, config.num_classes, budget)
    lines = [f"# {path.name}", "", *_architecture_lines(config, params), ""]
    if train_cfg:
        lines += _training_lines(path, config, train_cfg, metrics, hardware, budget)
    lines += _measured_lines(config, metrics)
    notes = sidefiles.read_bounded(path / "NOTES.md", sidefiles.MAX_NOTE_BYTES, budget)
    if notes is not None:
        # What the files cannot say (how the shipped weights relate to the run), written by hand.
        try:
            lines += ["## Notes", "", notes.decode("utf-8").strip(), ""]
        except UnicodeDecodeError:
            raise ckpt.CheckpointError(f"{path / 'NOTES.md'}: not UTF-8 text") from None
    return "\n".join(lines)


def _log(folder: Path, budget: sidefiles.Budget) -> list[dict]:
    """A run's train_log.csv as rows (none when it has none), through the gate."""
    log = sidefiles.read_train_log(folder, budget)
    return [] if log is None else log.to_dict("records")


def _architecture_lines(config, params: int) -> list[str]:
    lines = [f"**Architecture:** {ARCH_NAMES[config.arch]}  ", f"**Parameters:** {params:,}  "]
    if config.recursive:
        return lines + [
            f"**Block:** k={config.layers} layers, width {config.dim}, {config.heads} heads, MLP ratio "
            f"{config.mlp_ratio}; tokenizer `{config.tokenizer}`"
            + (f" ({config.conv_stages} conv stage{'s' * (config.conv_stages > 1)}, then a linear patch "
               f"embedding)" if config.tokenizer == "conv" and config.conv_stages else "")
            + f" to a {config.grid}x{config.grid} grid "
            f"({config.num_tokens} tokens); combine `{config.combine}`  ",
            f"**Recursion:** n={config.latent_updates} latent updates + 1 answer update per step, "
            f"trained with N={config.trained_steps} steps; effective depth {config.effective_depth} layers  "]
    if config.arch == "vit":
        return lines + [f"**Layers:** {config.layers} unshared, width {config.dim}, {config.heads} heads, "
                        f"tokenizer `{config.tokenizer}` ({config.num_tokens} tokens)  "]
    return lines + [f"**Widths:** {list(config.cnn_widths)}  "]


def _training_lines(path: Path, config, train_cfg: dict, metrics: dict | None, hardware: str,
                    budget: sidefiles.Budget) -> list[str]:
    log = _log(path, budget)
    val = train_cfg["val_size"]
    # A staged run keeps each earlier stage's config and log in stageK/ (ckpt.earlier_stages), and
    # the other runs of its last stage averaged into the shipped weights in stageKb/, ... (ckpt.averaged_runs).
    earlier = _recorded_runs(ckpt.earlier_stages(path), budget)
    siblings = _recorded_runs(ckpt.averaged_runs(path), budget)
    wall = sum(float(rows[-1]["wall_seconds"]) for rows in [r for *_, r in earlier + siblings] + [log] if rows)
    hardware_line = (f"- Hardware: {hardware}; wall time {wall / 3600:.2f} h"
                     + (" summed over the runs, though the runs of the last stage trained at the same time."
                        if siblings else ".") if log else "- Not trained yet.")
    evaluated_steps = len(metrics["top1_by_step"]) if metrics else default_steps(config)
    lines = ["## Training", "",
             f"- Data: {data_description(train_cfg['data'])}.",
             f"- Split: {50000 - val if 'cifar10' in train_cfg['data'] else 'train'} training images, "
             f"{val} held out from the training set for validation (every choice, including the epoch, "
             "was made on it; the test set was never used to choose anything), 10,000 test images.",
             f"- Epochs: {_epochs_text(train_cfg, log, earlier, siblings)}.",
             hardware_line, "",
             "Reproduce (from the repository root):", "", "```",
             *_commands(path, train_cfg, earlier, siblings, budget),
             f"python -m vitrm evaluate --checkpoint checkpoints/{path.name} --data {train_cfg['data']} "
             f"--max-steps {evaluated_steps}", "```", ""]
    if log and len(log) < train_cfg["epochs"]:
        lines += ["The run is not finished: continue it with the same command plus `--resume`.", ""]
    return lines


def _epochs_text(train_cfg: dict, log: list[dict], earlier: list, siblings: list) -> str:
    recipe = (f"batch {train_cfg['batch_size']}, AdamW lr {train_cfg['lr']}, cosine schedule, "
              f"EMA {train_cfg['ema_decay']}, label smoothing {train_cfg['label_smoothing']}, "
              f"augmentation {train_cfg['augment']}")
    if not (earlier or siblings):
        return f"{len(log)} of {train_cfg['epochs']} scheduled; {recipe}"
    last = len(earlier) + 1
    parts = [f"stage {k}, {_stage_summary(cfg_k, rows_k)}" for k, (_, cfg_k, rows_k) in enumerate(earlier, 1)]
    parts.append(f"stage {last}, {_stage_summary(train_cfg, log)}")
    parts += [f"stage {run.removeprefix('stage')}, side by side from the same weights, "
              f"{_stage_summary(c, rows)}" for run, c, rows in siblings]
    averaged = (f". The shipped weights are the uniform average of the {len(siblings) + 1} runs of stage "
                f"{last}" if siblings else "")
    return (f"{sum(len(r) for *_, r in earlier + siblings) + len(log)} in {last} stages, each after "
            f"the first a warm start from the one before (its EMA weights; a new optimizer and "
            f"schedule): " + "; ".join(parts) + averaged + f". The last stage's recipe: {recipe}")


def _commands(path: Path, train_cfg: dict, earlier: list, siblings: list, budget: sidefiles.Budget) -> list[str]:
    """The commands each run recorded, in the order they ran; then the average's, if the weights are one."""
    runs = [(f"{path.name}/{run}", cfg) for run, cfg, _ in earlier] + [(path.name, train_cfg)]
    runs += [(f"{path.name}/{run}", cfg) for run, cfg, _ in siblings]
    commands = [shlex.join(cfg["command"]) if cfg.get("command") else
                f"# {where}: no command recorded (the run predates the record); its config: {where}/{TRAIN_CONFIG}"
                for where, cfg in runs]
    averaged = path / ckpt.AVERAGED_FROM
    data = sidefiles.read_bounded(averaged, sidefiles.MAX_JSON_BYTES, budget)
    if data is not None:
        record = _averaged_record(sidefiles.parse_json(data, str(averaged)), str(averaged))
        commands.append(shlex.join(record["command"]) if record.get("command") else
                        f"# {path.name}: the average of {', '.join(record.get('sources', []))}; no command recorded")
    return commands


def _measured_lines(config, metrics: dict | None) -> list[str]:
    if not metrics:
        return ["Not evaluated yet: run `python -m vitrm evaluate --checkpoint DIR --data SPEC` "
                "(`python -m vitrm evaluate --help`).", ""]
    top1 = metrics["top1_by_step"]
    trained = min(config.trained_steps, len(top1))
    best = max(range(len(top1)), key=lambda i: top1[i])
    lines = ["## Measured on the test set", "",
             f"Data: {data_description(metrics['data'])}, {metrics['num_images']:,} test images.", "",
             f"- Top-1 at the trained step count (N={trained}): **{_pct(top1[trained - 1])}**",
             f"- Top-5 at N={trained}: {_pct(metrics['top5_by_step'][trained - 1])}",
             f"- Peak top-1 over N=1..{len(top1)}: {_pct(top1[best])} at N={best + 1}",
             f"- ECE at N={trained}: {metrics['ece_by_step'][trained - 1]:.4f}", ""]
    if len(top1) > 1:
        lines += ["| N | " + " | ".join(str(i + 1) for i in range(len(top1))) + " |",
                  "|---|" + "---|" * len(top1),
                  "| top-1 | " + " | ".join(f"{100 * a:.1f}" for a in top1) + " |", ""]
    if metrics.get("halting"):
        h = metrics["halting"]
        lines += [f"Adaptive halting ({h['rule']}): top-1 {_pct(h['adaptive_top1'])} with "
                  f"{h['adaptive_mean_steps']:.2f} steps on average.", ""]
        if "budget" in h:
            lines += [_budget_line(h["budget"]), ""]
    return lines + [f"Figures from `python -m vitrm evaluate` ({metrics.get('evaluated_at', '')}), stored in "
                    "`metrics.json`; the per-image table is `predictions.csv.gz`.", ""]


def _budget_line(budget: dict | None) -> str:
    if budget is None:
        return ("No halting threshold keeps top-1 within 0.5 points of top-1 at N: the halting head "
                "cannot save steps at this accuracy.")
    return (f"Fewest steps within {100 * budget['tolerance']:.1f} points of top-1 at "
            f"N={budget['reference_step']} ({_pct(budget['reference_top1'])}): halting at "
            f"{budget['threshold']:.2f} uses {budget['mean_steps']:.2f} steps on average for "
            f"top-1 {_pct(budget['top1'])}.")


def _stage_summary(train_cfg: dict, log: list[dict]) -> str:
    """What set a stage apart: its length, learning rate and the recursion-training choices."""
    done = len(log) == train_cfg["epochs"]
    length = f"{len(log)} epochs" if done else f"{len(log)} of {train_cfg['epochs']} scheduled epochs"
    bits = [f"lr {train_cfg['lr']}", f"n={train_cfg['model']['latent_updates']}"]
    if not train_cfg.get("detach_between_steps", True):
        bits.append("no detach between steps")
    if train_cfg.get("step_weighting", "uniform") != "uniform":
        bits.append(f"{train_cfg['step_weighting']} step weights")
    if train_cfg["augment"].get("randaugment_ops"):
        bits.append(f"RandAugment {train_cfg['augment']['randaugment_ops']} op(s)")
    mixes = [f"{name} alpha {train_cfg['augment'][key]}" for name, key in (("MixUp", "mixup_alpha"),
                                                                             ("CutMix", "cutmix_alpha"))
             if train_cfg["augment"].get(key)]
    if mixes:
        bits.append(" or ".join(mixes) + " on every batch")
    return f"{length} ({', '.join(bits)})"


def _recorded_runs(folders: list[Path], budget: sidefiles.Budget) -> list[tuple[str, dict, list[dict]]]:
    """(folder name, resolved train config, log) of each folder that kept its run's record."""
    runs = [(d.name, sidefiles.read_train_config(d, budget), d) for d in folders]
    return [(name, cfg, _log(d, budget)) for name, cfg, d in runs if cfg is not None]


def _averaged_record(raw: object, source: str) -> dict:
    """averaged_from.json (``vitrm.checkpoint.average``): the sources averaged and the command, if recorded."""
    if not isinstance(raw, dict) or not isinstance(raw.get("sources", []), list) \
            or not all(isinstance(s, str) for s in raw.get("sources", [])) \
            or not (raw.get("command") is None or isinstance(raw["command"], list)
                    and all(isinstance(a, str) for a in raw["command"])):
        raise ckpt.CheckpointError(f"{source}: expected sources and command as lists of strings")
    return raw


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m vitrm.card", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--hardware", default=f"{platform.processor() or platform.machine()} CPU")
    args = parser.parse_args(argv)
    for c in args.checkpoints:
        text = render_card(Path(c), args.hardware)
        ckpt.atomic_write_bytes(Path(c) / "README.md", text.encode())
        print(f"wrote {Path(c) / 'README.md'}")


if __name__ == "__main__":
    main()
