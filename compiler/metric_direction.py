"""Whether a metric is better high or low: the one rule the panel, the comparison and regression
checks share.

A notebook may declare it in its metadata, `metadata.nbscale.metrics = {"rmse": "min", "f1": "max"}`;
otherwise the metric's name decides, by whole words (split on `_ - . space` and camelCase), so
`val_loss`, `fitTime` and `scores.rmse` are lower-is-better while `uptime` and `accuracy` are not.
A name starting with `neg` (scikit-learn's `neg_log_loss` scorers) is a negated loss: higher is better.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .diagnostics import Diagnostic

MIN, MAX = "min", "max"
DIRECTIONS = (MIN, MAX)
METADATA_KEY = "metrics"  # under the notebook's `metadata.nbscale`

# Whole words of a metric name that mean "lower is better".
LOWER_IS_BETTER = frozenset({
    "loss", "losses", "error", "errors", "err", "mse", "mae", "rmse", "mape", "smape", "msle", "rmsle",
    "logloss", "nll", "perplexity", "ppl", "latency", "time", "duration", "runtime", "elapsed", "seconds",
    "wer", "cer", "fpr", "fnr", "brier", "cost", "regret",
})
NEGATED = "neg"  # scikit-learn's scorer prefix: neg_mean_squared_error is higher-is-better

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def name_words(name: str) -> list[str]:
    """The lower-case words of a metric name: `valLoss_2.RMSE` → val, loss, 2, rmse."""
    return [word.lower() for part in re.split(r"[_\-.\s]+", name) for word in _WORD.findall(part)]


def direction_by_name(name: str) -> str:
    words = name_words(name)
    lower = any(word in LOWER_IS_BETTER for word in words)
    if words and words[0] == NEGATED:
        lower = False
    return MIN if lower else MAX


def metric_direction(name: str, declared: dict[str, str] | None = None) -> str:
    """`min` or `max`: what the notebook declares for `name`, else what its name says."""
    value = (declared or {}).get(name)
    return value if value in DIRECTIONS else direction_by_name(name)


def metric_directions(names, declared: dict[str, str] | None = None) -> dict[str, str]:
    """The direction of each of `names` and of every declared metric."""
    out = {name: metric_direction(name, declared) for name in names}
    for name, value in (declared or {}).items():
        if value in DIRECTIONS:
            out.setdefault(name, value)
    return out


def declared_directions(metadata) -> tuple[dict[str, str], list[Diagnostic]]:
    """The valid directions the notebook metadata declares, and a diagnostic for each bad entry."""
    nbscale = metadata.get("nbscale") if isinstance(metadata, dict) else None
    declared = nbscale.get(METADATA_KEY) if isinstance(nbscale, dict) else None
    if declared is None:
        return {}, []
    where = f"notebook metadata nbscale.{METADATA_KEY}"
    if not isinstance(declared, dict):
        return {}, [_bad(f"{where} must be an object of metric name: \"min\" or \"max\"")]
    valid, problems = {}, []
    for name, value in declared.items():
        if value in DIRECTIONS:
            valid[name] = value
        else:
            problems.append(_bad(f"{where}[{json.dumps(name)}] is {json.dumps(value)}, not a metric direction"))
    return valid, problems


def _bad(message: str) -> Diagnostic:
    return Diagnostic("bad-metric", message,
                      hint='write "min" (lower is better) or "max" (higher is better), e.g. {"rmse": "min"}')


def notebook_directions(path) -> dict[str, str]:
    """The valid directions a notebook file declares ({} when it cannot be read: the names decide)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # (JSON nested too deep to read)
        return {}
    return declared_directions(data.get("metadata") if isinstance(data, dict) else None)[0]
