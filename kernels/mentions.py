"""Files a step's code names as text: dependencies that no audit event shows.

The recorder (`dependencies`) sees the files Python opens. A C or Rust library given a path
(polars, DuckDB, h5py, OpenCV, a model file loaded by XGBoost), a shell command (`!wc -l data.csv`)
or a process the step starts (`subprocess.run(["python", "prep.py"])`) opens them where no audit
hook looks, and a cached result would outlive a change to them. Their names are mostly written in
the step's cells: every quoted text, and every word that holds `/` or `.`, that names an existing
file is one of the step's files too — read, or written when it changed while the step ran (by
the step's own unseen writer, most likely) — and so is a file the text writes (`!sort a > b.txt`),
which may not exist before the step: a product once it does. A name built as the step runs
(`f"data/{month}.csv"`) is not seen: such a step still needs `cache:off`.
"""

from __future__ import annotations

import os

from ..compiler.file_edges import named_texts, written_paths

MAX_CANDIDATES = 10_000  # distinct texts looked up per step (a 2.75 MB cell holds about 100,000 words)


def mentioned_files(sources, cwd: str) -> list[str]:
    """The files (absolute paths) that the texts in `sources` name, relative to `cwd`: those that
    exist, and those the text writes (`file_edges.written_paths`), which may not exist yet."""
    seen, found = set(), {}
    for source in sources:
        for text in written_paths(source):
            found[os.path.abspath(os.path.join(cwd, text))] = None
    for source in sources:
        for text in named_texts(source):
            if text in seen:
                continue
            if len(seen) >= MAX_CANDIDATES:
                return list(found)
            seen.add(text)
            path = os.path.abspath(os.path.join(cwd, os.path.expanduser(text)))
            if os.path.isfile(path):
                found[path] = None
    return list(found)
