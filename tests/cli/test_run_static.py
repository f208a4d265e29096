"""The static views of a run (text and HTML): the final state, and every user text escaped."""

from __future__ import annotations

from nbscale.kernels.contract import FAILED, SUCCEEDED
from nbscale.run_static import bundle, html_view, text
from nbscale.run_view import RunModel

HOSTILE = "<img src=x onerror=alert(1)>"


def hostile_model() -> RunModel:
    model = RunModel(f"/tmp/{HOSTILE}.ipynb", run_id="abc123", status=FAILED)
    model.apply_run({"status": FAILED, "steps": [
        {"step": HOSTILE, "status": FAILED, "duration_s": 0.5,
         "error": {"cell": 4, "line": 2, "ename": "ValueError", "evalue": HOSTILE, "traceback": f"raise {HOSTILE}"}},
        {"step": "ok", "status": SUCCEEDED, "duration_s": 1.0}], "metrics": [{"name": HOSTILE, "value": 1}]})
    model.warnings.append(HOSTILE)
    model.error = HOSTILE
    return model


def test_every_user_text_is_escaped_in_the_html():
    page = html_view(hostile_model())
    assert "<img" not in page
    assert page.count("&lt;img src=x onerror=alert(1)&gt;") >= 6  # name, error, traceback, metric, warning, why


def test_the_text_writes_out_the_terminal_escapes_of_user_texts():
    # printed by `nbscale.run(display=True)` outside a kernel, and JupyterLab's text/plain acts on them too
    escapes = "\x1b]0;PWNED\x07\x1b[2J\x1b[31m"
    model = RunModel("/tmp/nb.ipynb", run_id="abc123", status=FAILED)
    model.apply_run({"status": FAILED, "steps": [
        {"step": "bad", "status": FAILED, "duration_s": 0.5,
         "error": {"cell": 0, "line": 1, "ename": "ValueError", "evalue": escapes, "traceback": f"raise {escapes}\n"}}],
        "metrics": [{"name": f"m{escapes}", "value": 1}]})
    model.warnings.append(escapes)
    plain = text(model)
    assert "\x1b" not in plain and "\x07" not in plain
    assert plain.count("\\x1b]0;PWNED\\x07") >= 3 and "\n  " in plain  # error, metric, warning; lines kept


def test_the_text_and_html_hold_the_state_and_the_failure_where_it_happened():
    model = hostile_model()
    plain = text(model)
    assert plain.splitlines()[0].endswith(": failed (2/2 steps)")
    assert "failed at cell 5, line 2: ValueError" in plain and "ok" in plain
    assert "at cell 5, line 2" in html_view(model)


def test_the_bundle_carries_the_widget_only_when_there_is_one():
    model = hostile_model()
    assert set(bundle(model)) == {"text/plain", "text/html"}
    live = bundle(model, "model-1")
    assert live["application/vnd.jupyter.widget-view+json"]["model_id"] == "model-1"
