"""The wheel maps compiler/, kernels/ and jupyter_ext/ into the nbscale namespace, completely."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"compiler": "nbscale/compiler", "kernels": "nbscale/kernels", "jupyter_ext": "nbscale/jupyter_ext",
           "nbscale": "nbscale"}


def test_wheel_holds_every_module_under_the_namespace(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("nbscale-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder, package in FOLDERS.items():
        for module in (ROOT / folder).rglob("*.py"):
            assert f"{package}/{module.relative_to(ROOT / folder).as_posix()}" in names, module
    assert not any(n.split("/")[0] in ("compiler", "kernels", "jupyter_ext") for n in names)
