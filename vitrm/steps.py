"""How many recursion steps to run: the one owner of the step policy.

N is a model's trained step count (``config.trained_steps``); a baseline (ViT, CNN) has one step,
whatever is asked of these rules.

    default_steps(config)   2N: what ``evaluate``, the model card's command, the app's pages and its
                            sample evaluation run when nobody says (``predict`` answers at N itself)
    max_steps(config)       STEP_FACTOR x N: the most anything runs a model for. The app's scrubber
                            offers steps up to it (those past N are extra steps, labelled as such),
                            ``evaluate --max-steps`` and ``predict --steps`` accept up to it, and the
                            config's work budget (``vitrm.config.check_budget``) is checked at it, so
                            no caller can ask a loaded model for more work than the budget allowed
    is_extra(config, step)  whether ``step`` lies past N
    MAX_STEPS               max_steps of the largest N a config may name: the bound on files read
                            without their config (metrics.json, predictions.csv)
    resolve(config, requested, flag, default)   the count to run, or a UsageError naming the flag

A checkpoint trained with N = 200 evaluates (400 steps) and predicts (200) with no flags.
"""

from __future__ import annotations

from .errors import UsageError

# A leaf (vitrm.config reads it for its budget and its range of trained_steps): it imports only vitrm.errors.
STEP_FACTOR = 4                    # the most steps: 4x the trained count (the app's scrubber)
DEFAULT_FACTOR = 2                 # the default: twice the trained count, where refinement shows
MAX_TRAINED_STEPS = 1024           # the largest N a config may name
MAX_STEPS = STEP_FACTOR * MAX_TRAINED_STEPS


def max_steps(config) -> int:
    return STEP_FACTOR * config.trained_steps if config.recursive else 1


def default_steps(config) -> int:
    return DEFAULT_FACTOR * config.trained_steps if config.recursive else 1


def is_extra(config, step: int) -> bool:
    return config.recursive and step > config.trained_steps


def resolve(config, requested: int | None, flag: str = "--max-steps", default: int | None = None) -> int:
    """The step count to run for ``requested`` (``default``, else ``default_steps``, when None), or a
    UsageError naming ``flag``."""
    if not config.recursive:
        if requested not in (None, 1):
            raise UsageError(f"{flag} {requested}: a {config.arch} baseline is not recursive, "
                             "so it has exactly one step")
        return 1
    steps = (default_steps(config) if default is None else default) if requested is None else requested
    if not 1 <= steps <= max_steps(config):
        raise UsageError(f"{flag} must be between 1 and {max_steps(config)} ({STEP_FACTOR}x the trained "
                         f"{config.trained_steps}), got {steps}")
    return steps
