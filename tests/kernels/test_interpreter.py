"""Tests for nbscale.kernels.interpreter: the real installation, and a real site folder of our own."""

from __future__ import annotations

import os
import sysconfig
import types

import numpy as np
import pandas as pd

from nbscale.kernels import fingerprints, interpreter
from nbscale.kernels.interpreter import canonical_name, installed_versions, is_interpreter_path, providers, site_folders


def test_interpreter_files_are_told_from_the_users(tmp_path):
    assert is_interpreter_path(np.__file__)
    assert is_interpreter_path(os.__file__)
    assert is_interpreter_path(os.path.join(sysconfig.get_paths()["purelib"], "anything.py"))
    assert is_interpreter_path(str(tmp_path / "__pycache__" / "helpers.cpython-311.pyc"))
    assert is_interpreter_path("/somewhere/lib/python3/dist-packages/x.py")
    assert not is_interpreter_path(str(tmp_path / "data.csv"))


def test_a_projects_own_files_in_the_folder_of_its_virtual_environment_are_the_users():
    """`python -m venv .` in the project: its data and code beside `lib/` and `bin/` are not the
    interpreter's (their changes were not seen), what the environment keeps there is."""
    import sys

    for own in ("data/x.csv", "src/helper.py", "notebooks/nb.ipynb"):
        assert not is_interpreter_path(os.path.join(sys.prefix, own))
    for installed in ("lib/python3/site-packages/x.py", "bin/python", "share/jupyter/x.json", "include/x.h"):
        assert is_interpreter_path(os.path.join(sys.prefix, installed))


def test_installed_versions_and_providers_are_the_installations():
    versions = installed_versions()
    assert versions["numpy"] == np.__version__ and versions["pandas"] == pd.__version__
    by_module = providers()
    assert by_module["numpy"] == ["numpy"] and by_module["pandas"] == ["pandas"]
    if "scikit-learn" in versions:
        assert "scikit-learn" in by_module["sklearn"]  # the module's name is not the distribution's


def test_names_are_canonical():
    assert canonical_name("Scikit_Learn") == "scikit-learn" == canonical_name("scikit.learn")


def test_installing_into_a_site_folder_is_seen(tmp_path, monkeypatch):
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    assert "nbscale-test-dist" not in installed_versions()
    info = site / "nbscale_test_dist-1.2.dist-info"
    info.mkdir()
    (info / "top_level.txt").write_text("nbscale_test_mod\n")
    os.utime(site, ns=(1, 1_000_000_000))  # a new mtime, whatever the clock's granularity
    assert installed_versions()["nbscale-test-dist"] == "1.2"
    assert providers()["nbscale_test_mod"] == ["nbscale-test-dist"]
    info.rename(site / "nbscale_test_dist-1.3.dist-info")  # an upgrade
    os.utime(site, ns=(1, 2_000_000_000))
    assert installed_versions()["nbscale-test-dist"] == "1.3"


def test_modules_listed_only_in_record_are_found(tmp_path, monkeypatch):
    site = tmp_path / "site-packages"
    info = site / "nbscale_test_rec-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "RECORD").write_text("nbscale_test_pkg/__init__.py,sha256=x,1\nnbscale_test_single.py,,\n"
                                 "nbscale_test_rec-0.1.dist-info/METADATA,,\n../../bin/tool,,\n")
    monkeypatch.syspath_prepend(str(site))
    found = providers()
    assert found["nbscale_test_pkg"] == found["nbscale_test_single"] == ["nbscale-test-rec"]
    assert ".." not in found


def stat_shows(monkeypatch, folder, shown):
    """`os.stat(folder)` gives `shown`."""
    real_stat = os.stat

    def stat(path, *args, **kwargs):
        return shown if str(path) == str(folder) else real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)


def test_an_install_in_the_tick_a_site_folder_was_listed_is_seen(tmp_path, monkeypatch):
    """A kernel whose file clock ticks once a jiffy (Linux before 6.13) keeps a folder's times when a
    second change comes in the same tick: what was listed as the folder had just changed is not
    remembered by its times."""
    site = tmp_path / "site-packages"
    info = site / "nbscale_test_tick-1.0.dist-info"
    info.mkdir(parents=True)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(fingerprints, "RACY_NS", 3600 * 10**9)  # "just changed", whatever the machine's load
    frozen = os.stat(site)
    assert installed_versions()["nbscale-test-tick"] == "1.0"
    info.rename(site / "nbscale_test_tick-2.0.dist-info")  # an upgrade, in the same tick: the same times
    stat_shows(monkeypatch, site, frozen)
    assert installed_versions()["nbscale-test-tick"] == "2.0"


def test_a_site_folder_that_changed_long_ago_keeps_its_key(tmp_path, monkeypatch):
    site = tmp_path / "site-packages"
    site.mkdir()
    os.utime(site, ns=(1, 1_000_000_000))
    monkeypatch.syspath_prepend(str(site))
    old = types.SimpleNamespace(st_mode=os.stat(site).st_mode, st_mtime_ns=10**18, st_ctime_ns=10**18 + 1)
    stat_shows(monkeypatch, site, old)
    first = site_folders()
    assert first == site_folders() and (str(site), 10**18, 10**18 + 1, 0) in first
    assert interpreter._metadata_folders(first) is interpreter._metadata_folders(site_folders())  # remembered
