"""The front end's jest tests (one per module in jupyter_ext/src/: wire models, reducers, formatting,
layout, rendering, live updates, sections...), run from pytest so that the one test command covers
them. node_modules come from the JS build of `pip install -e .`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_jest_suite_passes():
    jlpm = shutil.which("jlpm")
    assert jlpm, "jlpm (from jupyterlab or jupyter_builder) is needed for the front-end tests"
    env = {**os.environ, "CI": "true", "FORCE_COLOR": "0"}
    if not (ROOT / "node_modules" / ".bin" / "jest").exists():
        subprocess.run([jlpm, "install"], cwd=ROOT, env=env, check=True, capture_output=True)
    result = subprocess.run([jlpm, "test", "--ci"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    summary = re.search(r"Tests:\s+(\d+) passed, (\d+) total", output)
    assert summary and summary.group(1) == summary.group(2) and int(summary.group(1)) >= 80, output[-2000:]
