"""The ipywidgets view of a run: rows follow the model, Cancel calls back once, user text escaped."""

from __future__ import annotations

from test_run_static import HOSTILE, hostile_model

from nbscale.kernels.contract import RUNNING, SUCCEEDED
from nbscale.run_view import RunModel
from nbscale.run_widget import RunWidget


def test_rows_follow_the_model_and_cancel_calls_back():
    model = RunModel("nb.ipynb", run_id="r1", status=RUNNING)
    model.apply_run({"status": RUNNING, "steps": [{"step": "a", "status": RUNNING, "started": 1.0}]})
    calls = []
    view = RunWidget(model, lambda: calls.append(1))
    row = view.rows["a"]
    assert "running" in row.status.value and row.bar.value == 0.5 and row.bar.bar_style == "info"
    view.cancel_button.click()
    assert calls == [1] and view.cancel_button.disabled
    model.apply_run({"status": SUCCEEDED, "steps": [{"step": "a", "status": SUCCEEDED, "duration_s": 2.0},
                                                    {"step": "b", "status": SUCCEEDED, "duration_s": 1.0}]})
    view.refresh()
    assert list(view.rows) == ["a", "b"] and len(view.steps.children) == 2
    assert view.rows["a"].elapsed.value == "2.00s" and view.overall.value == 2
    assert 'data-status="succeeded"' in view.header.value and view.model_id


def test_user_text_is_escaped_in_the_widgets():
    view = RunWidget(hostile_model(), lambda: None)
    for html in (view.header.value, view.errors.value, view.metrics.value, view.notes.value):
        assert "<img" not in html
    assert "&lt;img" in view.errors.value and view.rows[HOSTILE].name.value == HOSTILE  # a Label is plain text
