"""Tests for nbscale.kernels.capture: a step's streams, displays, per-cell outputs and memory."""

from __future__ import annotations

import json
import time

import psutil
from test_executor import ok, run

from nbscale.kernels.capture import OutputBatcher, RssSampler, json_safe, live_output, short_repr

# --- streams ---------------------------------------------------------------------------------


def test_stdout_and_stderr_are_captured():
    result = ok(run("import sys\nprint('out')\nprint('err', file=sys.stderr)"))
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"


def test_shell_escapes(tmp_path):
    (tmp_path / "data.csv").write_text("a\n")
    result = ok(run("!echo hi", "files = !ls", outputs=["files"], cwd=str(tmp_path)))
    assert "hi\n" in result.stdout and "\r" not in result.stdout
    assert list(result.outputs["files"]) == ["data.csv"]


def test_many_writes_make_one_stream_output_holding_all_of_them():
    result = ok(run("import sys\nfor i in range(20000):\n    print(i)\nprint('e', file=sys.stderr)"))
    expected = "".join(f"{i}\n" for i in range(20000))
    assert result.stdout == expected
    outputs = result.cells[0]["outputs"]
    assert [(o["name"], o["text"]) for o in outputs] == [("stdout", expected), ("stderr", "e\n")]
    json.dumps(result.to_json())


# --- live output -----------------------------------------------------------------------------


def test_a_live_listener_gets_what_a_step_prints_by_the_end_of_each_cell():
    heard = []
    with live_output(lambda step, stream, text: heard.append((step, stream, text))):
        ok(run("print('one')", "import sys\nprint('two', file=sys.stderr)", name="talker", cells=[1, 2]))
    assert heard == [("talker", "stdout", "one\n"), ("talker", "stderr", "two\n")]
    heard.clear()
    ok(run("print('unheard')"))  # outside the block: nobody listens
    assert heard == []


def test_the_batcher_sends_at_most_the_last_characters_once_per_interval():
    calls = []
    batcher = OutputBatcher(lambda stream, text: calls.append((stream, text)), interval=3600, limit=10)
    for i in range(1000):
        batcher.add("stdout", f"{i:04d}\n")
    assert calls == []  # within the interval: nothing sent yet
    batcher.flush()
    # what was left out is said, and the text starts at a line's start: `8\n0999\n` is no line of the step's
    assert calls == [("stdout", "[… 4,995 characters not shown live; the step's log has them all]\n0999\n")]
    batcher.flush()
    assert len(calls) == 1  # nothing new: nothing sent
    eager = OutputBatcher(lambda stream, text: calls.append((stream, text)), interval=0, limit=100)
    eager.add("stderr", "now\n")
    assert calls[-1] == ("stderr", "now\n")



def test_a_single_print_is_sent_when_the_interval_ends_without_another_write():
    """A step that prints once and then computes: its line must not wait for the step's end."""
    calls = []
    batcher = OutputBatcher(lambda stream, text: calls.append((stream, text)), interval=0.2, limit=100)
    batcher.flush()  # the interval starts now
    batcher.add("stdout", "epoch 1\n")
    assert calls == []
    deadline = time.monotonic() + 10
    while not calls and time.monotonic() < deadline:
        time.sleep(0.02)
    assert calls == [("stdout", "epoch 1\n")]
    batcher.add("stdout", "epoch 2\n")
    batcher.flush()  # the step ends: what is left goes now, and no timer sends it again
    time.sleep(0.5)
    assert calls == [("stdout", "epoch 1\n"), ("stdout", "epoch 2\n")]

def test_a_failing_listener_does_not_fail_the_step():
    def broken(step, stream, text):
        raise RuntimeError("listener broke")

    with live_output(broken):
        assert ok(run("print('fine')")).stdout == "fine\n"


# --- displays and per-cell outputs -----------------------------------------------------------


def test_last_expression_is_an_execute_result_and_display_is_captured():
    result = ok(run("x = 40", "display({'a': 1})\nx + 2", "x;", cells=[3, 4, 5]))
    kinds = [(d["output_type"], d["cell"], d["data"]["text/plain"]) for d in result.displays]
    # the trailing semicolon silences cell 5, as in Jupyter
    assert kinds == [("display_data", 4, "{'a': 1}"), ("execute_result", 4, "42")]
    assert result.displays[1]["execution_count"] == 2  # the second cell run, as Jupyter counts
    assert "42" not in result.stdout  # no "Out[n]:" printing
    json.dumps(result.to_json())


def test_rich_display_data_is_kept_and_json_safe():
    result = ok(run(
        "from IPython.display import HTML, Image\n"
        "display(HTML('<b>hi</b>'))\n"
        "display(Image(data=b'\\x89PNG\\r\\n\\x1a\\n' + bytes(8), format='png'))"
    ))
    html, png = result.displays
    assert html["data"]["text/html"] == "<b>hi</b>"
    assert isinstance(png["data"]["image/png"], str)  # base64, as nbformat stores it
    json.dumps(result.to_json())


def test_each_cell_keeps_its_outputs_in_order():
    result = ok(run(
        "print('a', end='')\nprint('b')\ndisplay('shown')\nprint('c')",
        "from IPython.display import clear_output\nprint('gone')\nclear_output()\nprint('kept')",
        "handle = display('old', display_id=True)\nhandle.update('new')",
        cells=[1, 2, 3],
    ))
    outputs = [[(o["output_type"], o.get("text") or o["data"]["text/plain"]) for o in c["outputs"]]
               for c in result.cells]
    assert outputs == [
        [("stream", "ab\n"), ("display_data", "'shown'"), ("stream", "c\n")],  # writes in a row merge
        [("stream", "kept\n")],
        [("display_data", "'new'")],
    ]
    assert [c["cell"] for c in result.cells] == [1, 2, 3]
    assert all(c["started"] <= c["finished"] for c in result.cells)


# --- shaping and memory ----------------------------------------------------------------------


def test_json_safe_values():
    class Opaque:
        def __repr__(self):
            return "<opaque>"

    value = {1: [b"\x00\x01", float("nan"), 2.5, (True, None)], "o": Opaque()}
    assert json_safe(value) == {"1": ["AAE=", None, 2.5, [True, None]], "o": "<opaque>"}
    assert short_repr("x" * 100, 10) == "'xxxxxx..."


def test_rss_sampler_sees_a_short_lived_allocation():
    baseline = psutil.Process().memory_info().rss
    with RssSampler() as sampler:
        blob = b"x" * (200 * 1024 * 1024)
        time.sleep(0.05)
        del blob
    assert sampler.peak - baseline > 150 * 1024 * 1024


def test_rss_peak_is_of_the_block_only_and_sees_an_allocation_too_short_to_sample():
    blob = b"x" * (300 * 1024 * 1024)  # touched: resident, then given back before the block
    del blob
    baseline = psutil.Process().memory_info().rss
    with RssSampler(interval=3600) as sampler:  # no sample would come in time: the kernel keeps the peak
        blob = b"x" * (120 * 1024 * 1024)
        del blob
    assert 100 * 1024 * 1024 < sampler.peak - baseline < 250 * 1024 * 1024


def test_peak_rss_of_a_step():
    baseline = psutil.Process().memory_info().rss
    result = ok(run("import time\nblob = b'x' * (200 * 1024 * 1024)\ntime.sleep(0.05)\ndel blob"))
    assert result.peak_rss_bytes - baseline > 150 * 1024 * 1024


def test_a_step_that_closes_sys_stdout_keeps_what_it_printed_and_fails_later_writes_as_python_would():
    result = run("print('kept')\nimport sys\nsys.stdout.close()\nprint('lost')")
    assert result.status == "failed" and "I/O operation on closed file" in result.error.evalue
    assert result.stdout == "kept\n"
    assert ok(run("import sys\nsys.stdout.close()\nsys.stderr.write('still here')")).stderr == "still here"
