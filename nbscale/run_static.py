"""A run's state (`run_view.RunModel`) as text and as HTML: what a saved, papermill-executed or
nbconvert-ed notebook shows where no widget front end draws the live view.

Every piece of text that comes from the user or a step (notebook and step names, errors,
tracebacks, warnings, metric names) goes through `html.escape`: a notebook is not trusted markup;
and the text view through `reporting.literal_lines`: a terminal, and JupyterLab's plain text, act on
the escapes a step's error may hold (a window title set, the screen cleared, colours).
"""

from __future__ import annotations

import html
import time

from .kernels.contract import CACHED, CANCELLED, FAILED, RUNNING, SUCCEEDED, UPSTREAM_FAILED
from .run_view import RunModel, elapsed_text

COLOURS = {SUCCEEDED: "#2e7d32", CACHED: "#00796b", FAILED: "#c62828", UPSTREAM_FAILED: "#ad1457",
           CANCELLED: "#6d4c41", RUNNING: "#1565c0"}


def e(value) -> str:
    return html.escape(str(value), quote=True)


def title(model: RunModel) -> str:
    from pathlib import Path

    run = f" {model.run_id[:12]}" if model.run_id else ""
    return f"nbscale run{run} of {Path(model.notebook).name}: {model.status}"


def error_lines(error) -> tuple[str, str]:
    """(headline, traceback) of a step's error: a dict of `contract.error_dict` or a plain reason."""
    if isinstance(error, dict):
        from .reporting import error_headline

        return error_headline(error), str(error.get("traceback") or "")
    return str(error), ""


def text(model: RunModel, now: float | None = None) -> str:
    now = now if now is not None else time.time()
    with model.lock:
        done, total = model.progress()
        lines = [f"{title(model)} ({done}/{total} steps)"]
        if model.cluster_summary():
            lines.append(f"cluster: {model.cluster_summary()}")
        width = max([len(n) for n in model.steps] + [4])
        for step in model.steps.values():
            took = elapsed_text(step.elapsed(now), running=step.status == RUNNING)
            lines.append(f"  {step.name:<{width}}  {step.status:<15} {took}")
        for step in model.steps.values():
            if step.error:
                headline, trace = error_lines(step.error)
                lines.append(f"{step.name} failed {headline}")
                lines += [f"  {line}" for line in trace.rstrip().splitlines()]
        lines += [f"metric {name} = {value}" for name, value in model.metrics.items()]
        lines += [f"warning: {w}" for w in model.warnings]
        if model.error:
            lines.append(f"why: {model.error}")
    from .reporting import literal_lines

    return literal_lines("\n".join(lines))


def html_view(model: RunModel, now: float | None = None) -> str:
    now = now if now is not None else time.time()
    with model.lock:
        done, total = model.progress()
        parts = [f'<div class="nbscale-run" data-status="{e(model.status)}">',
                 f"<b>{e(title(model))}</b> ({done}/{total} steps)"]
        if model.cluster_summary():
            parts.append(f"<div>cluster: {e(model.cluster_summary())}</div>")
        parts.append(_steps_table(model, now))
        parts += [_error_block(step.name, step.error) for step in model.steps.values() if step.error]
        if model.metrics:
            rows = "".join(f"<tr><td>{e(n)}</td><td>{e(v)}</td></tr>" for n, v in model.metrics.items())
            parts.append(f"<table><tr><th>metric</th><th>value</th></tr>{rows}</table>")
        parts += [f'<div style="color:#e65100">warning: {e(w)}</div>' for w in model.warnings]
        if model.error:
            parts.append(f"<div>why: {e(model.error)}</div>")
        parts.append("</div>")
    return "\n".join(parts)


def _steps_table(model: RunModel, now: float) -> str:
    rows = []
    for step in model.steps.values():
        colour = COLOURS.get(step.status, "#616161")
        took = elapsed_text(step.elapsed(now), running=step.status == RUNNING)
        bar = f'<progress max="1" value="{step.fraction(now):.2f}"></progress>'
        rows.append(f'<tr class="nbscale-step" data-step="{e(step.name)}" data-status="{e(step.status)}">'
                    f"<td>{e(step.name)}</td><td style=\"color:{colour}\">{e(step.status)}</td>"
                    f"<td>{e(took)}</td><td>{bar}</td></tr>")
    head = "<tr><th>step</th><th>status</th><th>elapsed</th><th>progress</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def _error_block(name: str, error) -> str:
    headline, trace = error_lines(error)
    body = f"<pre>{e(trace)}</pre>" if trace else ""
    return f'<div class="nbscale-error"><b>{e(name)}</b> failed {e(headline)}{body}</div>'


def bundle(model: RunModel, widget_model_id: str | None = None) -> dict:
    """The display's mimebundle: the live widget (when there is one) and its static fallbacks."""
    data = {"text/plain": text(model), "text/html": html_view(model)}
    if widget_model_id:
        data["application/vnd.jupyter.widget-view+json"] = {"version_major": 2, "version_minor": 0,
                                                            "model_id": widget_model_id}
    return data
