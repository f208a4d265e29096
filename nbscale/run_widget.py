"""The live ipywidgets view of a run (`run_view.RunModel`): one row per step with status, elapsed
time and a progress bar, the cluster's workers and memory, the metrics, a failed step's traceback
and a Cancel button.

`refresh()` may be called from any thread (ipykernel ≥ 6 sends the widgets' comm messages from it);
a trait only sends a message when its value changes, so refreshing often costs little. Texts from the
notebook go into `HTML` widgets only through `html.escape` (`run_static.e`) or into plain `Label`s.
"""

from __future__ import annotations

import time

import ipywidgets as w

from .kernels.contract import FAILED, RUNNING, SUCCEEDED, UPSTREAM_FAILED
from .run_static import COLOURS, e, error_lines, title
from .run_view import RunModel, elapsed_text

BAR_STYLES = {SUCCEEDED: "success", FAILED: "danger", UPSTREAM_FAILED: "danger", RUNNING: "info"}


class StepRow:
    def __init__(self, name: str):
        self.name = w.Label(name, layout=w.Layout(width="14em"))
        self.status = w.HTML(layout=w.Layout(width="10em"))
        self.elapsed = w.Label(layout=w.Layout(width="6em"))
        self.bar = w.FloatProgress(min=0.0, max=1.0, layout=w.Layout(width="12em"))
        self.box = w.HBox([self.name, self.status, self.elapsed, self.bar])
        self.box.add_class("nbscale-step")

    def show(self, step, now: float) -> None:
        colour = COLOURS.get(step.status, "#616161")
        self.status.value = f'<span class="nbscale-status" style="color:{colour}">{e(step.status)}</span>'
        self.elapsed.value = elapsed_text(step.elapsed(now), running=step.status == RUNNING)
        self.bar.value = step.fraction(now)
        self.bar.bar_style = BAR_STYLES.get(step.status, "")


class RunWidget:
    """The widget tree of a run; `on_cancel()` is called (in the kernel's thread) by the button."""

    def __init__(self, model: RunModel, on_cancel):
        self.model, self.on_cancel = model, on_cancel
        self.header = w.HTML()
        self.overall = w.IntProgress(min=0, max=1, description="steps", layout=w.Layout(width="30em"))
        self.cluster = w.HTML()
        self.rows: dict[str, StepRow] = {}
        self.steps = w.VBox()
        self.errors = w.HTML()
        self.metrics = w.HTML()
        self.notes = w.HTML()
        self.cancel_button = w.Button(description="Cancel", icon="stop", button_style="warning",
                                      tooltip="Cancel the run (as the panel's Cancel does)")
        self.cancel_button.on_click(self._cancel_clicked)
        self.box = w.VBox([self.header, w.HBox([self.overall, self.cancel_button]), self.cluster, self.steps,
                           self.errors, self.metrics, self.notes])
        self.box.add_class("nbscale-run-widget")
        self.refresh()

    @property
    def model_id(self) -> str:
        return self.box.model_id

    def _cancel_clicked(self, _button) -> None:
        self.cancel_button.disabled = True
        self.cancel_button.description = "Cancelling…"
        self.on_cancel()

    def refresh(self) -> None:
        now = time.time()
        model = self.model
        with model.lock:
            done, total = model.progress()
            self.header.value = f'<b class="nbscale-run-status" data-status="{e(model.status)}">{e(title(model))}</b>'
            self.overall.max, self.overall.value = max(total, 1), done
            summary = model.cluster_summary()
            self.cluster.value = f"cluster: {e(summary)}" if summary else ""
            if list(self.rows) != list(model.steps):
                self.rows = {name: self.rows.get(name) or StepRow(name) for name in model.steps}
                self.steps.children = [row.box for row in self.rows.values()]
            for name, step in model.steps.items():
                self.rows[name].show(step, now)
            self.errors.value = "".join(_error_html(s.name, s.error) for s in model.steps.values() if s.error)
            self.metrics.value = "".join(f"<div>metric {e(n)} = {e(v)}</div>" for n, v in model.metrics.items())
            notes = [f"warning: {e(x)}" for x in model.warnings] + ([f"why: {e(model.error)}"] if model.error else [])
            self.notes.value = "<br>".join(notes)
            if model.finished:
                self.cancel_button.disabled = True
                self.cancel_button.description = "Cancel"


def _error_html(name: str, error) -> str:
    headline, trace = error_lines(error)
    return f"<div><b>{e(name)}</b> failed {e(headline)}<pre>{e(trace)}</pre></div>"
