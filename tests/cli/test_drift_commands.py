"""`nbscale drift` and `nbscale baseline`: real runs of a notebook whose parameter shifts one column's
distribution (local engine), as text and JSON; references, pins, bad ids and hostile column names."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner
from conftest import EXAMPLES_DIR, make_notebook

from nbscale.cli import main
from nbscale.kernels.runner import RunOptions, run_notebook

LOCAL = RunOptions(engine="local")
HOSTILE = "\x1b[31mred[bold red]x[/]\u202e<b>"


def cli(*args, columns=80):
    return CliRunner(env={"COLUMNS": str(columns)}).invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three runs: the notebook's values, the same again (cache off), and the hostile column shifted."""
    nb = make_notebook(tmp_path_factory.mktemp("drift"), [
        ("shift = 0.0", ["parameters"]),
        ("import numpy as np\nimport pandas as pd\n"
         f"df = pd.DataFrame({{{HOSTILE!r}: np.random.default_rng(0).normal(shift, 1, 400),\n"
         "                   'steady': np.random.default_rng(1).normal(0, 1, 400)})", ["step:make"]),
    ], name="shifting")
    results = [run_notebook(nb, given, options=options) for given, options in
               (({}, LOCAL), ({}, RunOptions(engine="local", use_cache=False)), ({"shift": 3.0}, LOCAL))]
    assert all(result.ok for result in results)
    return nb, [result.run_id for result in results]


def test_drift_flags_the_shifted_column_against_the_previous_run(runs):
    nb, (first, second, shifted) = runs
    result = cli("drift", shifted[:8], "--notebook", nb)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"against {second[:12]} (previous succeeded run): 1 of 2 column(s) drifted (50%)" in " ".join(out.split())
    assert "\x1b" not in out and "\u202e" not in out and out.count("\\x1b[31m") == 1
    assert "yes" in next(line for line in out.splitlines() if "\\x1b[31m" in line)
    wide = cli("drift", shifted[:8], "--notebook", nb, columns=200).stdout
    assert "\\x1b[31mred[bold red]x[/]\\u202e<b>" in next(line for line in wide.splitlines() if "yes" in line)
    assert "no" in next(line for line in out.splitlines() if "steady" in line)
    model = json.loads(cli("drift", shifted, "--notebook", nb, "--output", "json").stdout)
    columns = {c["name"]: c for c in model["values"][0]["columns"]}
    assert columns[HOSTILE]["drifted"] and not columns["steady"]["drifted"] and columns[HOSTILE]["test"] == "ks"


def test_a_re_run_with_the_same_data_does_not_drift(runs):
    nb, (first, second, _) = runs
    result = cli("drift", second, "--reference", first, "--notebook", nb, "--fail-on-drift")
    assert result.exit_code == 0 and "0 of 2 column(s) drifted" in " ".join(result.stdout.split())
    assert cli("drift", runs[1][2], "--notebook", nb, "--fail-on-drift").exit_code == 3


def test_the_first_run_has_nothing_to_compare_with(runs):
    nb, (first, _, _) = runs
    result = cli("drift", first, "--notebook", nb)
    assert result.exit_code == 0 and "nothing to compare with" in result.stdout


def test_a_pinned_baseline_is_the_default_reference(runs):
    nb, (first, second, shifted) = runs
    assert "no pinned runs" in cli("baseline", "show", "--notebook", nb).stdout
    assert cli("baseline", "pin", first[:10], "--notebook", nb).stdout.startswith(f"pinned run {first[:12]}")
    assert cli("baseline", "pin", second, "--name", "good", "--notebook", nb).exit_code == 0
    listed = cli("baseline", "show", "--notebook", nb).stdout.splitlines()
    assert [line.split()[:2] for line in listed] == [["baseline", first[:12]], ["good", second[:12]]]
    model = json.loads(cli("drift", shifted, "--notebook", nb, "--output", "json").stdout)
    assert (model["reference"], model["why"]) == (first, "pinned baseline 'baseline'")
    model = json.loads(cli("drift", shifted, "--baseline", "good", "--notebook", nb, "--output", "json").stdout)
    assert model["reference"] == second
    assert cli("baseline", "unpin", "--notebook", nb).stdout.startswith("unpinned 'baseline'")
    assert cli("baseline", "unpin", "--name", "good").exit_code == 2  # no run store in this folder
    assert cli("baseline", "unpin", "--name", "good", "--notebook", nb).exit_code == 0
    missing = cli("baseline", "unpin", "--notebook", nb)
    assert missing.exit_code == 2 and missing.stdout == "" and "no notebooks have a pin named" in missing.stderr
    for name in ("", "  ", "a\nb"):  # (an empty name was pinned, and `drift --baseline ''` had to name it)
        refused = cli("baseline", "pin", first, "--name", name, "--notebook", nb)
        assert refused.exit_code == 2 and "non-empty line of printable text" in refused.stderr
    assert "no pinned runs" in cli("baseline", "show", "--notebook", nb).stdout


@pytest.mark.parametrize("args,message", [
    (["nope"], "no run 'nope'"),
    (["RUN", "--reference", "\x1b[2Jzz"], "no run '\\x1b[2Jzz'"),
    (["RUN", "--baseline", "missing"], "no run of this notebook is pinned as 'missing'"),
    (["RUN", "--baseline", "a", "--reference", "RUN"], "not both"),
    (["RUN", "--threshold", "psi"], "NAME=VALUE"),
    (["RUN", "--threshold", "psi=-1"], "must be a number ≥ 0"),
])
def test_bad_ids_and_settings_exit_2_with_nothing_on_stdout(runs, args, message):
    nb, (_, _, shifted) = runs
    result = cli("drift", *[shifted if a == "RUN" else a for a in args], "--notebook", nb)
    assert result.exit_code == 2 and result.stdout == "" and message in result.stderr, result.stderr


def test_diff_shows_the_drift_of_the_later_run(runs):
    nb, (first, _, shifted) = runs
    out = cli("diff", first, shifted, "--notebook", nb).stdout
    assert "Data drift against #1" in out
    assert "drifted" in next(line for line in out.splitlines() if "\\x1b[31m" in line) and "\x1b" not in out
    model = json.loads(cli("diff", first, shifted, "--notebook", nb, "--output", "json").stdout)
    assert {row["column"]: row["status"] for row in model["drift"]} == {HOSTILE: "drifted", "steady": "ok"}


def example(tmp_path, name):
    """A copy of an example notebook in its own folder (its runs stay out of the repository)."""
    shutil.copy(EXAMPLES_DIR / name, tmp_path / name)
    return tmp_path / name


def test_drift_is_flagged_on_the_monitoring_examples_later_period(tmp_path):
    nb = example(tmp_path, "monitoring.ipynb")
    reference, later = (run_notebook(nb, given, options=LOCAL) for given in ({"shift": 0.0}, {}))
    assert reference.ok and later.ok
    result = cli("drift", later.run_id, "--reference", reference.run_id, "--notebook", nb, "--output", "json",
                 "--fail-on-drift")
    assert result.exit_code == 3, result.output
    values = {v["value"]: v for v in json.loads(result.stdout)["values"]}
    current = {c["name"]: c["drifted"] for c in values["current"]["columns"]}
    assert current["income"] and current["debt"] and current["channel"] and not current["age"]
    assert values["scored"]["dataset_drift"] and values["current"]["dataset_drift"]
    assert not values["reference"]["drifted"]  # the training period is the same in both runs


def test_a_re_run_of_the_model_comparison_example_does_not_drift(tmp_path):
    nb = example(tmp_path, "model_comparison.ipynb")
    first = run_notebook(nb, options=LOCAL)
    again = run_notebook(nb, options=RunOptions(engine="local", use_cache=False))
    assert first.ok and again.ok and not again.step("load")["cached"]
    result = cli("drift", again.run_id, "--notebook", nb, "--output", "json", "--fail-on-drift")
    model = json.loads(result.stdout)
    assert result.exit_code == 0 and model["reference"] == first.run_id
    assert model["columns_compared"] > 10 and model["columns_drifted"] == 0
