"""Profiles as records (kernels/profile_records.py): their light form, the ones a cached step's
manifest keeps, and a cached re-run that reads them without importing numpy."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import make_notebook
from test_profiles import frame

from nbscale.kernels.errors import CorruptArtifactWarning
from nbscale.kernels.profile_records import light, stored_profiles
from nbscale.kernels.profiles import step_profiles
from nbscale.kernels.runner import RunOptions, run_notebook
from nbscale.kernels.store import ArtifactStore


def test_light_profiles_drop_the_sketches_and_keep_the_summaries():
    full = step_profiles({"df": frame(50)})
    found = light(full)
    column = found["values"]["df"]["columns"][0]
    assert "kll" not in column and "m2" not in column and column["quantiles"]
    assert "kll" in full["values"]["df"]["columns"][0], "the profile it was made from is left as it was"


def test_light_takes_hostile_records_without_failing():
    assert light(None) is None and light(["not", "a", "dict"]) is None
    odd = {"values": {"a": "text", "b": {"columns": [1, None, {"name": "x", "kll": "…", "mean": 2.0}]},
                      "c": {"rows": 3}}}
    assert light(odd)["values"] == {"b": {"columns": [{"name": "x", "mean": 2.0}]}, "c": {"rows": 3}}


def test_stored_profiles_are_the_manifests_and_none_when_gone_or_damaged(tmp_path):
    store, key = ArtifactStore(str(tmp_path / "store")), "sha256:" + "c" * 64
    assert stored_profiles(store, key) is None  # no artifact
    kept = step_profiles({"df": frame(20)})
    store.put(key, {"df": frame(20)}, profiles=kept)
    assert stored_profiles(store, key) == json.loads(json.dumps(kept))
    manifest = next((tmp_path / "store").rglob("manifest.json"))
    manifest.write_text("{not json")
    with pytest.warns(CorruptArtifactWarning):  # said once, as for any damaged artifact
        assert stored_profiles(store, key) is None


def test_a_cached_rerun_reads_its_steps_profiles_without_importing_numpy(tmp_path):
    nb = make_notebook(tmp_path, [
        ("import numpy as np\narr = np.arange(1000.0)", ["step:make"]),
        ("total = float(arr.sum())", ["step:use"]),
    ])
    assert run_notebook(nb, options=RunOptions(engine="local")).ok
    script = f"""
import sys
from nbscale.kernels.runner import RunOptions, run_notebook
result = run_notebook({str(nb)!r}, options=RunOptions(engine="local"))
make = result.step("make")
print(result.ok, make["cached"], make["profiles"]["values"]["arr"]["rows"], "numpy" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True", "1000", "False"]
