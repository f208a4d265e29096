"""kfp files: a file one step writes and a later one reads is warned of for Kubeflow."""

from __future__ import annotations

from conftest import make_notebook

from nbscale.compiler import compile_notebook
from nbscale.compiler.targets.kfp.files import file_handoff_warnings


def _warnings(tmp_path, cells) -> list:
    return file_handoff_warnings(compile_notebook(make_notebook(tmp_path, cells)))


def test_a_step_reading_a_file_an_earlier_step_writes_is_warned_of_at_its_first_cell(tmp_path):
    cells = [("import pandas as pd\nOUT = 'data/clean.csv'", ["imports"]),
             ("df = pd.DataFrame({'a': [1]})\ndf.to_csv(OUT)", ["step:write"]),
             ("n = 1", ["step:other"]),
             ("back = pd.read_csv('data/clean.csv')", ["step:read"])]
    (found,) = _warnings(tmp_path, cells)
    assert found.code == "kfp-file-handoff" and found.cell == 3
    assert "step 'read' names data/clean.csv, which step 'write' writes" in found.message
    assert "s3://" in found.hint


def test_values_handed_on_urls_and_files_of_one_step_are_no_hand_off(tmp_path):
    cells = [("import pandas as pd", ["imports"]),
             ("df = pd.DataFrame({'a': [1]})\ndf.to_csv('s3://bucket/clean.csv')\ndf.to_csv('own.csv')\n"
              "again = pd.read_csv('own.csv')", ["step:write"]),
             ("back = pd.read_csv('s3://bucket/clean.csv')\nn = len(df)", ["step:read"]),
             ("df.to_csv('own.csv')\nmine = pd.read_csv('own.csv')", ["step:writes_its_own"])]
    assert _warnings(tmp_path, cells) == []
