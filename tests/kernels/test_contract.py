"""The step contract: outcomes, the error shape, the run key, the timeout and the state paths."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest

from nbscale.kernels import contract
from nbscale.kernels.errors import StepTimeout
from nbscale.kernels.tracebacks import StepError


def test_statuses_and_outcomes():
    assert set(contract.FINISHED) < set(contract.STATUSES) and contract.RUNNING not in contract.FINISHED
    assert contract.StepOutcome("s", contract.CACHED).ok and not contract.StepOutcome("s", contract.FAILED).ok
    failed = contract.failed_outcome("s", "OSError", "disk full")
    assert failed.status == contract.FAILED and failed.summary["error"]["evalue"] == "disk full"
    assert failed.summary["error"]["traceback"] == "disk full\n"
    payload = contract.finished_payload(failed)
    assert payload["status"] == contract.FAILED and set(payload) >= {"summary", "attempts", "key", "stale"}


def test_the_error_dict_has_the_step_error_shape():
    error = contract.error_dict("E", "went wrong", cell=3, line=2)
    assert StepError(**error).cell == 3



def test_an_output_that_cannot_be_pickled_is_blamed_on_the_statement_binding_it():
    step = {"name": "a", "cells": [4, 6], "source": ["x = 1", "%time y = 2\nlock = make()\nlock = other()"]}
    error = contract.unstorable_output("lock", "output 'lock' of type _thread.lock cannot be serialised", step)
    assert (error["cell"], error["line"], error["ename"]) == (6, 2, "MarshalError")
    assert "(bound at cell 7, line 2)" in error["evalue"] and "imports cell" in error["evalue"]
    StepError(**error)  # the step error's shape
    # a name no cell of the step binds (a hostile step spec, a star import): said without a place
    lost = contract.unstorable_output("ghost", "output 'ghost' cannot be serialised", {"name": "a", "cells": [0],
                                                                                     "source": ["def (:"]})
    assert lost["cell"] is None and "bound at" not in lost["evalue"]


def test_run_keys_chain_on_input_digests_only():
    assert contract.run_key("sha256:a", {}) == "sha256:a"
    one = contract.run_key("sha256:a", {"x": "xxh3_128:1"})
    assert one != "sha256:a" and one == contract.run_key("sha256:a", {"x": "xxh3_128:1"})
    assert one != contract.run_key("sha256:a", {"x": "xxh3_128:2"})
    assert one != contract.run_key("sha256:b", {"x": "xxh3_128:1"})


def test_deadline_interrupts_python_code_and_the_message_names_the_step():
    started = time.monotonic()
    with pytest.raises(StepTimeout), contract.deadline(0.2):
        while True:
            pass
    assert time.monotonic() - started < 5
    with contract.deadline(None):
        pass
    error = StepError(**contract.error_dict("StepTimeout", ""))
    contract.explain_timeout(error, "train", 30)
    assert error.evalue == "step 'train' ran longer than its timeout of 30 s"


def test_deadline_ends_a_sleep_in_the_main_thread_and_leaves_no_alarm_behind():
    started = time.monotonic()
    with pytest.raises(StepTimeout), contract.deadline(0.3):
        time.sleep(30)  # no bytecode runs for an exception raised from another thread to land between
    assert time.monotonic() - started < 5
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) is signal.SIG_DFL
    with contract.deadline(0.2):  # a step that ends in time: nothing strikes after it
        pass
    time.sleep(0.5)


def test_deadline_leaves_the_processs_own_alarm_alone_and_still_ends_python_code():
    fired = []
    previous = signal.signal(signal.SIGALRM, lambda *_: fired.append(True))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.4)
        with pytest.raises(StepTimeout), contract.deadline(0.2):
            while True:
                pass
        time.sleep(0.5)
        assert fired == [True]  # the caller's alarm went off, to its own handler
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_deadline_in_another_thread_uses_no_signal():
    seen = {}

    def step():
        try:
            with contract.deadline(0.2):
                seen["alarm"] = signal.getitimer(signal.ITIMER_REAL)
                while True:
                    pass
        except StepTimeout:
            seen["ended"] = True

    thread = threading.Thread(target=step)
    thread.start()
    thread.join(5)
    assert seen == {"alarm": (0.0, 0.0), "ended": True}


def test_state_paths_sit_beside_the_notebook(tmp_path):
    nb = tmp_path / "sub" / "nb.ipynb"
    assert contract.state_dir(nb) == (tmp_path / "sub" / ".nbscale").resolve()
    assert contract.run_store_path(nb).name == "runs.sqlite"
    assert Path(contract.artifacts_url(nb)).parent == contract.state_dir(nb)
    assert "'a', 'b'" in contract.missing_outputs_message("s", ["a", "b"])


def test_a_notebook_path_that_is_a_symlink_loop_has_its_state_beside_it(tmp_path):
    # no RuntimeError ("Symlink loop", as Path.resolve() raises): reading the notebook says what is wrong
    (tmp_path / "a.ipynb").symlink_to("b.ipynb")
    (tmp_path / "b.ipynb").symlink_to("a.ipynb")
    assert contract.state_dir(tmp_path / "a.ipynb") == tmp_path.resolve() / ".nbscale"


def test_a_lost_state_folder_is_named_with_what_went_with_it(tmp_path):
    message = contract.state_lost_message(contract.run_store_path(tmp_path / "nb.ipynb"))
    assert str(contract.state_dir(tmp_path / "nb.ipynb")) in message and "runs.sqlite" in message
    assert "history" in message and "lost" in message


def test_step_logs_live_in_the_state_folder_one_folder_per_run(tmp_path):
    nb = tmp_path / "nb.ipynb"
    assert contract.logs_dir(nb, "r1") == tmp_path.resolve() / ".nbscale" / "logs" / "r1"
    assert contract.step_log_path(nb, "r1", "train") == contract.logs_dir(nb, "r1") / "train.log"


def test_long_output_is_kept_as_its_beginning_and_end_around_a_marker():
    assert contract.truncated_text("short", "/log") == "short"
    assert contract.truncated_text(None, "/log") is None
    text = "".join(f"{i:07d}\n" for i in range(500_000))  # 4 MB
    kept = contract.truncated_text(text, "/x/s.log", limit=1000)
    assert kept == text[:250] + "\n… output truncated (4.0 MB); full log at /x/s.log\n" + text[-750:]


def test_code_starts_announces_once_within_its_block_and_the_block_end_makes_sure():
    said = []
    contract.code_starts()  # outside any block: nobody to tell
    with contract.announced_code_start(lambda: said.append("started")):
        assert said == []
        contract.code_starts()
        contract.code_starts()  # a second attempt of the step: already said
        assert said == ["started"]
    assert said == ["started"]
    with contract.announced_code_start(lambda: said.append("again")):
        pass  # an `execute` that never said: the block's end does
    assert said == ["started", "again"]
    with pytest.raises(ValueError), contract.announced_code_start(lambda: said.append("failed")):
        raise ValueError("before the code")
    assert said[-1] == "failed"
    contract.code_starts()
    assert said[-1] == "failed" and len(said) == 3, "the announcement ends with its block"


def test_a_step_specs_environment_is_never_in_its_repr():
    """Dask logs a failed task's arguments: the variables of the shell running the pipeline (a warm
    cluster's steps get them) must not reach its log."""
    spec = contract.StepSpec(step={"name": "a"}, prelude={}, metrics={}, parameters={}, hash="h", store_url="s",
                             cwd="c", notebook="n", environ={"AWS_SECRET_ACCESS_KEY": "hunter2"})
    assert "hunter2" not in repr(spec) and "AWS_SECRET_ACCESS_KEY" not in repr(spec)
    assert spec.environ == {"AWS_SECRET_ACCESS_KEY": "hunter2"}
