"""kernels/kfp_component.py: the run time a generated KFP component calls, run in this process.

The artifacts are kfp's own `dsl.Dataset` / `dsl.Artifact` / `dsl.Metrics` on local folders, as
kfp.local hands them to a component. Whole pipelines under kfp.local are in test_kfp_local.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kfp import dsl

from nbscale.kernels import contract, kfp_component
from nbscale.kernels.contract import FAILED, SUCCEEDED, timeout_message
from nbscale.kernels.kfp_component import KEPT_FOLDER, RESULT_FILE, ArtifactFolder, run_kfp_step


def artifact(cls, folder, name):
    return cls(uri=str(folder / name), name=name, metadata={})


def step(name, *sources, outputs=()):
    return {"name": name, "cells": list(range(len(sources))), "source": list(sources), "outputs": list(outputs)}


PRELUDE = {"cells": [], "source": []}


def record_of(record):
    return json.loads((Path(record.path) / RESULT_FILE).read_text())


def test_inputs_in_outputs_out_metrics_and_the_record(tmp_path):
    source = artifact(dsl.Dataset, tmp_path, "in_data")
    ArtifactFolder(source.path).put("make", {"data": [1, 2]}, [], "make")
    out, metrics, record = (artifact(dsl.Dataset, tmp_path, "out_total"), artifact(dsl.Metrics, tmp_path, "metrics"),
                            artifact(dsl.Artifact, tmp_path, "step_record"))
    run_kfp_step(notebook="nb.ipynb", step=step("add", "total = sum(data) + n + len(names)\nprint(total)",
                                                outputs=["total"]),
                 prelude=PRELUDE, parameters={"n": 10}, json_parameters={"names": '["a", "b"]'},
                 inputs={"data": source}, outputs={"total": out},
                 metrics={"step": "add", "names": ["total"], "exprs": {}}, metrics_artifact=metrics, record=record)
    assert ArtifactFolder(out.path).get("add", ["total"]) == {"total": 15}
    assert out.metadata["names"] == ["total"] and out.metadata["types"] == {"total": "int"}
    assert metrics.metadata == {"total": 15.0}
    result = record_of(record)
    assert result["status"] == SUCCEEDED and result["attempt"] == 1 and result["stdout"] == "15\n"
    assert record.metadata["status"] == SUCCEEDED


def test_kept_values_that_cannot_be_serialised_are_left_out(tmp_path):
    record = artifact(dsl.Artifact, tmp_path, "step_record")
    run_kfp_step(notebook="nb.ipynb", step=step("s", "import threading\nlock = threading.Lock()\nok = [1]"),
                 prelude=PRELUDE, keep=["lock", "ok"], record=record)
    assert ArtifactFolder(f"{record.path}/{KEPT_FOLDER}").get("s") == {"ok": [1]}


def test_a_failure_exits_non_zero_with_the_cell_and_line(tmp_path):
    record = artifact(dsl.Artifact, tmp_path, "step_record")
    # the message numbers the cell (index 1) as JupyterLab does; the record keeps the index
    with pytest.raises(SystemExit, match=r"step 'bad' of nb.ipynb failed at cell 2, line 2: ValueError: boom"):
        run_kfp_step(notebook="nb.ipynb", step=step("bad", "x = 1", "y = 2\nraise ValueError('boom')"),
                     prelude=PRELUDE, record=record)
    result = record_of(record)
    assert result["status"] == FAILED and (result["error"]["cell"], result["error"]["line"]) == (1, 2)
    with pytest.raises(SystemExit):  # KFP retries in the same folder: the record counts attempts
        run_kfp_step(notebook="nb.ipynb", step=step("bad", "raise ValueError('again')"), prelude=PRELUDE,
                     record=record)
    assert record_of(record)["attempt"] == 2


def test_an_unreadable_input_is_the_steps_failure(tmp_path):
    record = artifact(dsl.Artifact, tmp_path, "step_record")
    with pytest.raises(SystemExit):
        run_kfp_step(notebook="nb.ipynb", step=step("s", "y = x"), prelude=PRELUDE,
                     inputs={"x": artifact(dsl.Dataset, tmp_path, "nothing_there")}, record=record)
    error = record_of(record)["error"]
    assert error["ename"] == "ArtifactNotFound" and "could not read its inputs" in error["evalue"]


def test_a_timeout_is_the_one_step_timeout_with_the_one_message(tmp_path):
    record = artifact(dsl.Artifact, tmp_path, "step_record")
    with pytest.raises(SystemExit):
        run_kfp_step(notebook="nb.ipynb", step=step("spin", "import time\nwhile True:\n    time.sleep(0.01)"),
                     prelude=PRELUDE, timeout=1, record=record)
    error = record_of(record)["error"]
    assert error["ename"] == "StepTimeout" and error["evalue"] == timeout_message("spin", 1)
    assert (error["cell"], error["line"]) == (0, 3)
    assert error["traceback"].rstrip().endswith(timeout_message("spin", 1))


def test_a_step_that_catches_its_timeout_and_ends_fails_and_writes_no_outputs(tmp_path):
    # its cut-short value was written to its output artifact, and the component succeeded
    record, out = artifact(dsl.Artifact, tmp_path, "step_record"), artifact(dsl.Dataset, tmp_path, "out_epochs")
    code = ("import time\nepochs = 0\ntry:\n    for _ in range(50):\n        time.sleep(0.1)\n        epochs += 1\n"
            "except:\n    pass")
    with pytest.raises(SystemExit, match="StepTimeout"):
        run_kfp_step(notebook="nb.ipynb", step=step("train", code, outputs=["epochs"]), prelude=PRELUDE, timeout=1,
                     outputs={"epochs": out}, record=record)
    error = record_of(record)["error"]
    assert error["ename"] == "StepTimeout" and "its code caught the timeout and ended on its own" in error["evalue"]
    assert not Path(out.path).exists() or not any(Path(out.path).iterdir())


def test_a_step_that_keeps_catching_its_timeout_ends_the_component_with_its_record(tmp_path):
    import subprocess
    import sys

    record = tmp_path / "step_record"
    script = f"""
from kfp import dsl
from nbscale.kernels import contract
from nbscale.kernels.kfp_component import run_kfp_step
contract.TIMEOUT_GRACE_S = 1.0
code = "while True:\\n    try:\\n        sum(range(1000))\\n    except BaseException:\\n        pass"
run_kfp_step(notebook="nb.ipynb", step={{"name": "stubborn", "cells": [0], "source": [code], "outputs": []}},
             prelude={{"cells": [], "source": []}}, timeout=1,
             record=dsl.Artifact(uri={str(record)!r}, name="step_record", metadata={{}}))
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == contract.EXIT_TIMEOUT, run.stderr
    result = json.loads((record / RESULT_FILE).read_text())
    assert result["status"] == FAILED and "did not stop within 1 s" in result["error"]["evalue"]


def test_pipelines_compiled_earlier_still_find_run_step():
    assert kfp_component.run_step is run_kfp_step


def test_a_tasks_output_is_written_whatever_room_a_cache_would_leave(tmp_path, monkeypatch):
    # the store's reserve (`disk_room`) protects the disk from a cache; a KFP task's output is no cache:
    # its readers cannot do without it, so only a full disk stops it
    import os

    import numpy as np

    from nbscale.kernels import disk_room
    from nbscale.kernels.errors import StoreFull
    from nbscale.kernels.store import ArtifactStore

    st = os.statvfs(tmp_path)
    monkeypatch.setattr(disk_room, "reserve", lambda total, free=st.f_bavail * st.f_frsize: free - 2**20)
    value = {"big": np.ones(2**20)}  # 8 MiB, past the 1 MiB a cache may take
    with pytest.raises(StoreFull):
        ArtifactStore(str(tmp_path / "cache")).put("sha256:" + "c" * 64, value, [["big"]], "make")
    ArtifactFolder(str(tmp_path / "output")).put("make", value, [], "make")
    assert ArtifactFolder(str(tmp_path / "output")).get("make")["big"].sum() == 2**20
