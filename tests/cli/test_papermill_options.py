"""papermill's keyword arguments and NBSCALE_* variables → RunOptions; the notebook's path."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbscale.kernels.errors import ParameterError
from nbscale.papermill_options import notebook_path, regression_options, run_options


def test_keywords_win_over_the_environment(monkeypatch):
    monkeypatch.setenv("NBSCALE_ENGINE", "papermill")
    monkeypatch.setenv("NBSCALE_WORKERS", "3")
    monkeypatch.setenv("NBSCALE_NO_CACHE", "yes")
    options = run_options(nbscale_engine="local", workers=None, use_cache=None)
    assert (options.engine, options.workers, options.use_cache) == ("local", 3, False)
    assert run_options(nbscale_engine="local", use_cache=True).use_cache is True


def test_defaults_without_keywords_or_environment(monkeypatch):
    for name in ("NBSCALE_ENGINE", "NBSCALE_WORKERS", "NBSCALE_NO_CACHE", "NBSCALE_STORE", "NBSCALE_SCHEDULER",
                 "NBSCALE_SCHEDULER_FILE"):
        monkeypatch.delenv(name, raising=False)
    options = run_options(nbscale_engine="local")
    assert (options.engine, options.use_cache, options.store_url, options.workers) == ("local", True, None, None)


def test_the_notebook_path_is_the_input_file_or_a_name_in_the_working_folder(tmp_path, monkeypatch):
    nb = tmp_path / "real.ipynb"
    nb.write_text("{}")
    assert notebook_path(str(nb)) == nb.resolve()
    monkeypatch.chdir(tmp_path)
    remote = notebook_path("s3://bucket/remote.ipynb")
    assert remote.parent == Path.cwd() and remote.name.startswith("remote.") and remote.suffix == ".ipynb"
    assert notebook_path("-") == Path.cwd() / "notebook.ipynb"
    assert notebook_path(None) == Path.cwd() / "notebook.ipynb"


def test_a_relative_input_path_is_relative_to_the_folder_papermill_started_in(tmp_path, monkeypatch):
    (tmp_path / "nb.ipynb").write_text("{}")
    (tmp_path / "d1").mkdir()
    monkeypatch.chdir(tmp_path / "d1")  # papermill's --cwd
    assert notebook_path("nb.ipynb", str(tmp_path)) == (tmp_path / "nb.ipynb").resolve()
    assert notebook_path("s3://bucket/remote.ipynb", str(tmp_path)).parent == tmp_path.resolve()


def test_a_notebook_read_from_an_address_is_never_named_as_a_local_notebook_or_another_address(tmp_path):
    (tmp_path / "train.ipynb").write_text("{}")  # a local notebook of the same name, beside it
    first = notebook_path("s3://bucket/train.ipynb", str(tmp_path))
    assert first != tmp_path.resolve() / "train.ipynb"
    assert notebook_path("s3://bucket/train.ipynb", str(tmp_path)) == first  # (the same address: the same history)
    assert notebook_path("https://example.org/train.ipynb", str(tmp_path)) != first
    assert (first.parent, first.suffix) == (tmp_path.resolve(), ".ipynb")


@pytest.mark.parametrize("given", ["no", 0, "false"])
def test_use_cache_and_fail_on_regression_that_are_not_bools_are_refused(given):
    with pytest.raises(ParameterError, match="use_cache must be True or False"):
        run_options(nbscale_engine="local", use_cache=given)
    with pytest.raises(ParameterError, match="fail_on_regression must be True or False"):
        regression_options(fail_on_regression=given)


@pytest.mark.parametrize("env, given", [("abc", None), (None, "x"), ("2.5", None)])
def test_workers_that_are_not_a_whole_number_name_the_option(monkeypatch, env, given):
    monkeypatch.delenv("NBSCALE_WORKERS", raising=False)
    if env is not None:
        monkeypatch.setenv("NBSCALE_WORKERS", env)
    with pytest.raises(ParameterError, match="workers: a whole number of at least 1, not '"):
        run_options(nbscale_engine="local", workers=given)
