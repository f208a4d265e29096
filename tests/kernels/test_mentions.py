"""kernels/mentions.py: the existing files a step's cells name as text."""

from __future__ import annotations

import os

from nbscale.kernels import mentions
from nbscale.kernels.mentions import mentioned_files


def test_quoted_names_shell_words_and_folders_that_name_existing_files_are_found(tmp_path):
    for name in ("data.csv", "my data.csv", "sub/x.parquet", "prep.py"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("x")
    sources = ['df = pl.read_csv("data.csv")\nother = open("my data.csv")',
               "!python prep.py --input sub/x.parquet --missing gone.csv\nsub.method(0.5)",
               f"t = duckdb.sql(\"select * from '{tmp_path / 'data.csv'}'\")"]
    found = mentioned_files(sources, str(tmp_path))
    assert found == [str(tmp_path / n) for n in ("data.csv", "my data.csv", "prep.py", "sub/x.parquet")]
    assert mentioned_files(["x = 'sub'\ny = 'missing.csv'\nz = '.'"], str(tmp_path)) == []  # a folder, nothing


def test_home_relative_names_and_the_cap_on_texts_looked_up(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "cfg.json").write_text("{}")
    assert mentioned_files(["c = load('~/cfg.json')"], "/") == [str(tmp_path / "cfg.json")]
    monkeypatch.setattr(mentions, "MAX_CANDIDATES", 3)
    many = "\n".join(f"v{i} = 'f{i}.txt'" for i in range(10)) + "\nlast = 'cfg.json'"
    assert mentioned_files([many], str(tmp_path)) == []
    assert os.path.isfile(tmp_path / "cfg.json")
