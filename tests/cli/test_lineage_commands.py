"""`nbscale lineage`: the lineage of a metric of a real run (local engine) as a text tree and as JSON,
with the file read, its digest and the package versions; unknown runs and names are exit 2 with
the names listed and nothing on stdout; hostile names printed literally; `--openlineage DIR`
writes the run's events."""

from __future__ import annotations

import json
import os
import subprocess

import pandas
import pytest
from click.testing import CliRunner
from lineage_notebook import lineage_notebook

from nbscale.cli import main
from nbscale.kernels.fingerprints import file_state
from nbscale.kernels.runner import RunOptions, run_notebook

HOSTILE = "\x1b[31mred\u202e"


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    nb = lineage_notebook(tmp_path_factory.mktemp("lineage"))
    result = run_notebook(nb, {"scale": 5}, options=RunOptions(engine="local"))
    assert result.ok, result.steps
    return nb, result.run_id


def test_the_text_tree_names_the_steps_the_file_the_versions_and_the_parameters(ran):
    nb, run_id = ran
    result = cli("lineage", run_id[:8], "score", "--notebook", nb)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith(f"metric score = 20.0, made by step metrics in run {run_id[:12]} (succeeded)")
    digest = file_state(str(nb.parent / "data.csv"))["digest"]
    assert f"file read data.csv ({digest[:24]}…)" in out
    assert f"pandas {pandas.__version__}" in out and "parameters: scale=5" in out
    tree = [line.lstrip("│├└─ ") for line in out.splitlines() if "[succeeded]" in line]
    assert [line.split(" [")[0] for line in tree] == ["metrics", "evaluate", "count", "feat", "load"]
    assert "feat (shown above)" in out


def test_json_is_the_lineage_model(ran):
    nb, run_id = ran
    result = cli("lineage", run_id, "score", "--notebook", nb, "--output", "json")
    assert result.exit_code == 0, result.output
    model = json.loads(result.stdout)
    load = {n["step"]: n for n in model["nodes"]}["load"]
    assert load["files_read"]["data.csv"] == file_state(str(nb.parent / "data.csv"))["digest"]
    assert load["packages"]["pandas"] == pandas.__version__


def test_unknown_names_and_runs_are_exit_2_naming_what_there_is(ran):
    nb, run_id = ran
    result = cli("lineage", run_id[:8], HOSTILE, "--notebook", nb)
    assert result.exit_code == 2 and result.stdout == ""
    assert "it has: df, double, n, score, total" in result.stderr
    assert "\x1b" not in result.stderr and "\u202e" not in result.stderr and "\\x1b[31mred\\u202e" in result.stderr
    missing = cli("lineage", run_id[:8], "--notebook", nb)
    assert missing.exit_code == 2 and "give the NAME" in missing.stderr and "score" in missing.stderr
    unknown = cli("lineage", "abcdef12", "score", "--notebook", nb)
    assert unknown.exit_code == 2 and unknown.stdout == "" and "no run 'abcdef12'" in unknown.stderr


def test_openlineage_export_writes_the_runs_events(ran, tmp_path):
    nb, run_id = ran
    env = {**os.environ, "NO_COLOR": "1"}
    done = subprocess.run(["nbscale", "lineage", run_id[:8], "--openlineage", tmp_path / "ol", "--notebook", nb],
                          capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    files = sorted((tmp_path / "ol").glob("*.json"))
    assert done.stdout.strip() == f"{len(files)} OpenLineage events written to {tmp_path / 'ol'}"
    assert len(files) == 12  # the run and its five steps, START and COMPLETE each
    kinds = [json.loads(f.read_text())["eventType"] for f in files]
    assert kinds.count("START") == 6 and kinds.count("COMPLETE") == 6


def test_an_openlineage_folder_that_cannot_be_made_is_exit_2_in_one_line(ran, tmp_path):
    nb, run_id = ran
    (tmp_path / "afile").write_text("x")  # (NotADirectoryError came out as a traceback)
    result = cli("lineage", run_id[:8], "--openlineage", str(tmp_path / "afile" / "events"), "--notebook", nb)
    assert result.exit_code == 2 and result.stdout == ""
    assert "cannot write the OpenLineage events into" in result.stderr and "Not a directory" in result.stderr
    assert "Traceback" not in result.stderr and (tmp_path / "afile").read_text() == "x"

