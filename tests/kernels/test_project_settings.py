"""Project settings (kernels/project_settings.py): the nearest pyproject.toml's tables, and the
switch that turns data profiles off (the environment wins over the file; bad values are refused)."""

from __future__ import annotations

import pytest

from nbscale.kernels.project_settings import PROFILES_ENV, SettingsError, profiles_enabled, project_table


def _project(tmp_path, toml: str):
    (tmp_path / "pyproject.toml").write_text(toml)
    (tmp_path / "sub").mkdir()
    return tmp_path / "sub" / "nb.ipynb"  # a notebook in a folder below the project's file


def test_the_nearest_pyproject_table_is_read_and_a_missing_one_is_empty(tmp_path):
    notebook = _project(tmp_path, "[tool.nbscale.cost]\ncore_hour = 0.5\n")
    assert project_table(notebook, "cost")[0] == {"core_hour": 0.5}
    assert project_table(notebook, "drift")[0] == {}


def test_a_broken_file_or_a_table_that_is_not_one_is_an_error_naming_the_file(tmp_path):
    with pytest.raises(SettingsError, match="pyproject.toml"):
        project_table(_project(tmp_path, "[tool.nbscale\n"), "cost")
    (tmp_path / "pyproject.toml").write_text('[tool.nbscale]\ncost = "cheap"\n')
    with pytest.raises(SettingsError, match="must be a table"):
        project_table(tmp_path / "sub" / "nb.ipynb", "cost")


def test_profiles_are_on_by_default_and_off_by_the_project_or_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(PROFILES_ENV, raising=False)
    notebook = _project(tmp_path, "[tool.nbscale.other]\n")
    assert profiles_enabled(notebook) is True
    (tmp_path / "pyproject.toml").write_text("[tool.nbscale.profiles]\nenabled = false\n")
    assert profiles_enabled(notebook) is False
    monkeypatch.setenv(PROFILES_ENV, "on")  # the environment wins over the file
    assert profiles_enabled(notebook) is True
    monkeypatch.setenv(PROFILES_ENV, " OFF ")
    assert profiles_enabled(notebook) is False


@pytest.mark.parametrize("toml, env", [('[tool.nbscale.profiles]\nenabled = "maybe"\n', ""),
                                       ("[tool.nbscale.profiles]\nenabled = 2\n", ""),
                                       ("", "sometimes")])
def test_a_profiles_switch_that_is_not_on_or_off_is_refused_saying_where(tmp_path, monkeypatch, toml, env):
    monkeypatch.setenv(PROFILES_ENV, env)
    notebook = _project(tmp_path, toml)
    with pytest.raises(SettingsError, match=PROFILES_ENV if env else r"\[tool.nbscale.profiles\] enabled"):
        profiles_enabled(notebook)
