"""The notebook the lineage tests run (kernels/lineage, kernels/openlineage, `nbscale lineage`, the
lineage endpoint): it imports pandas, reads a CSV file beside it, uses a local module, reads a
parameter, and its metric comes through a small DAG:

    load (reads data.csv) → feat (scale, a local module) → count ─┐
                               └──────────────────────────────┴→ evaluate → metrics (score)
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from conftest import make_notebook

CELLS = [
    ("import pandas as pd", ["imports"]),
    ("scale = 2", ["parameters"]),
    ("df = pd.read_csv('data.csv')", ["step:load"]),
    ("from {helpers} import double\ndf['y'] = double(df['a']) * scale\ntotal = float(df['y'].sum())", ["step:feat"]),
    ("n = len(df)", ["step:count"]),
    ("score = total / n", ["step:evaluate"]),
    ("score", ["metrics"]),
]
DATA = "a\n1\n2\n3\n"


def helpers_module(folder) -> str:
    """The local module's name: one per folder, as tests run notebooks of several folders in one
    process (the local engine) and a module imported once is the one every later import gets."""
    return "helpers_" + hashlib.blake2b(str(Path(folder).resolve()).encode(), digest_size=4).hexdigest()


def lineage_notebook(folder, data: str = DATA) -> Path:
    """The notebook, data.csv and its local module (`helpers_module(folder)`.py) in `folder`."""
    folder = Path(folder)
    (folder / "data.csv").write_text(data)
    (folder / f"{helpers_module(folder)}.py").write_text("def double(x):\n    return x * 2\n")
    cells = [(source.replace("{helpers}", helpers_module(folder)), tags) for source, tags in CELLS]
    return make_notebook(folder, cells, name="nb")
