"""Command line: ``python -m vitrm train | evaluate | predict | average | project | import-reference``.

Errors a user can cause (a wrong path, a bad config, an absurd value: ``vitrm.errors.UserError``)
print one line and exit with status 2; ``--debug`` shows the full traceback instead. Any other
exception is a bug and keeps its traceback. ``predict`` goes on past an
unreadable image (one line for it on stderr) and exits with status 1 at the end.
"""

from __future__ import annotations

import argparse
import sys

from .errors import UsageError, is_user_error


def _train(args) -> None:
    from .train import load_train_config, train
    overrides = list(args.set or [])
    for key in ("data", "data_dir", "out", "epochs", "seed"):
        value = getattr(args, key)
        if value is not None:
            overrides.append(f"{key}={value}")
    cfg = load_train_config(args.config, overrides)
    if args.resume and args.out is None and args.config is None:
        raise UsageError("--resume needs --out (the run directory) or the run's config")
    if args.stop_after is not None and args.stop_after < 1:
        raise UsageError(f"--stop-after must be at least 1, got {args.stop_after}")
    train(cfg, resume=args.resume, progress=not args.quiet, stop_after=args.stop_after, command=args.command_line,
          threads=args.threads)


def _evaluate(args) -> None:
    from .evaluate import evaluate_cli
    evaluate_cli(args)


def _predict(args) -> int:
    from .evaluate import predict_cli
    # Each unreadable file already had its line; the status tells scripts that one failed.
    return 0 if predict_cli(args) else 1


def _import_reference(args) -> None:
    from .reference import import_reference
    out = import_reference(args.source, args.out, args.class_names)
    print(f"wrote {out} (model.safetensors, config.json, README.md): open it in the app or evaluate it")


def _average(args) -> None:
    from .checkpoint import average
    out = average(args.checkpoints, args.out, command=args.command_line)
    print(f"wrote the mean of {len(args.checkpoints)} checkpoints' weights to {out}")


def _project(args) -> None:
    from .projection import project_cli
    project_cli(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vitrm", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model with deep supervision")
    t.add_argument("config", nargs="?", help="YAML or JSON config (see configs/)")
    t.add_argument("--data", help="cifar10, cifar100 or imagefolder:PATH")
    t.add_argument("--data-dir", dest="data_dir", help="where torchvision datasets live")
    t.add_argument("--out", help="run directory; it becomes the checkpoint")
    t.add_argument("--epochs", type=int)
    t.add_argument("--seed", type=int)
    t.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override any config key, e.g. --set model.dim=96 --set augment.mixup_alpha=0.8")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last epoch")
    t.add_argument("--stop-after", dest="stop_after", type=int, metavar="EPOCH",
                   help="stop after this epoch of the schedule; the run stays resumable (--resume)")
    t.add_argument("--threads", type=int, metavar="N",
                   help="torch CPU threads; overrides the config, also on --resume (speed only, not the recipe)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_train)

    e = sub.add_parser("evaluate", help="per-step metrics into the checkpoint's metrics.json")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--data", required=True, help="cifar10, cifar100 or imagefolder:PATH")
    e.add_argument("--data-dir", dest="data_dir", default="data")
    e.add_argument("--split", default="test", choices=["test", "train"])
    e.add_argument("--max-steps", dest="max_steps", type=int, default=None,
                   help="evaluate steps 1..N (default: 2x the trained count)")
    e.add_argument("--limit", type=int, default=None,
                   help="only N images, spread evenly over the split (every class is represented)")
    e.add_argument("--batch-size", dest="batch_size", type=int, default=500)
    e.add_argument("--cache-dir", dest="cache_dir", default=None,
                   help="where decoded imagefolder images are cached (default: $VITRM_CACHE or ~/.cache/vitrm)")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=_evaluate)

    p = sub.add_parser("predict", help="top-k classes at every step for each image")
    p.add_argument("images", nargs="+")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--steps", type=int, default=None, help="default: the trained count")
    p.add_argument("--top-k", dest="top_k", type=int, default=3)
    p.set_defaults(func=_predict)

    r = sub.add_parser("import-reference", help="a checkpoint of the paper's public training code (best.pt) "
                       "-> a checkpoint directory; read without running any code in the file")
    r.add_argument("source", help="the best.pt that code saved")
    r.add_argument("--out", required=True, help="checkpoint directory to write; must not hold files yet")
    r.add_argument("--class-names", dest="class_names", metavar="FILE",
                   help="one class name per line, in label order (default: from the source's dataset)")
    r.set_defaults(func=_import_reference)

    a = sub.add_parser("average", help="the uniform mean of several checkpoints' weights (runs from one warm start)")
    a.add_argument("checkpoints", nargs="+", help="checkpoint directories of one architecture")
    a.add_argument("--out", required=True, help="directory for the averaged checkpoint")
    a.set_defaults(func=_average)

    j = sub.add_parser("project", help="every image's answer token over the steps on one 2-D map "
                       "(projection.safetensors, for the app's projector)")
    j.add_argument("--checkpoint", required=True)
    j.add_argument("--data", required=True, help="cifar10, cifar100 or imagefolder:PATH")
    j.add_argument("--data-dir", dest="data_dir", default="data")
    j.add_argument("--split", default="test", choices=["test", "train"])
    j.add_argument("--steps", type=int, default=None,
                   help="project steps 1..S (default: the steps metrics.json covers, else 2x the trained count)")
    j.add_argument("--limit", type=int, default=None, help="at most N images, spread evenly (default and cap: 10,000)")
    j.add_argument("--batch-size", dest="batch_size", type=int, default=500)
    j.add_argument("--cache-dir", dest="cache_dir", default=None)
    j.set_defaults(func=_project)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    args = build_parser().parse_args(argv)
    # The command as typed, recorded with what it produces (train_config.json, averaged_from.json).
    args.command_line = ["python", "-m", "vitrm", *argv]
    try:
        status = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        # The one place that turns the user's errors into a clean exit; a bug keeps its traceback.
        if args.debug or not is_user_error(e):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
