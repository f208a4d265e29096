"""Reading notebooks: nbformat v4 in, a small immutable model out; and the cell numbers people read.

A cell's `index` is its 0-based position among all the notebook's cells (markdown and raw cells
count). The IR, the run store and the JSON the panel gets keep that index. A person reads the
number JupyterLab shows for the cell, 1-based ("Cell 5/12" in its status bar, also counting every
cell): `cell_label` is the one place that turns an index into text.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from .errors import NotARegularFile, NotebookReadError

# A \uD800-\uDFFF escape: only then is a lone surrogate possible, and worth a second look.
LONE_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


def cell_number(index: int) -> int:
    """The number JupyterLab shows for the cell at 0-based `index` (its status bar's "Cell N/M")."""
    return index + 1


def cell_index(number: int) -> int:
    """The 0-based index of the cell JupyterLab numbers `number` (the inverse of `cell_number`)."""
    return number - 1


def cell_label(index: int, line: int | None = None) -> str:
    """"cell 5", or "cell 5, line 2": how every message names the cell at 0-based `index`."""
    label = f"cell {cell_number(index)}"
    return label if line is None else f"{label}, line {line}"


@dataclass(frozen=True)
class Cell:
    index: int
    cell_type: str
    source: str
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Notebook:
    path: str
    cells: tuple[Cell, ...]
    metadata: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return Path(self.path).stem


def read_notebook(path) -> Notebook:
    path = Path(path)
    try:
        text = regular_file_bytes(path).decode("utf-8")
    except FileNotFoundError:
        raise NotebookReadError(path, "no such file") from None
    except UnicodeDecodeError as exc:
        raise NotebookReadError(path, f"cannot be read: {_encoding_named(path) or exc}") from None
    except NotARegularFile:
        raise NotebookReadError(path, "is not a file (a pipe, a device or a folder)") from None
    except OSError as exc:
        raise NotebookReadError(path, f"cannot be read: {exc}") from None
    if "\x00" in text[:4]:  # (UTF-16 of ASCII text decodes as UTF-8, with a NUL after every character)
        raise NotebookReadError(path, f"cannot be read: {_encoding_named(path)}")
    return notebook_from_dict(_parse_json(text, path), path)


def regular_file_bytes(path: Path, most: int | None = None) -> bytes:
    """The bytes of `path`, a regular file (else NotARegularFile) of at most `most` bytes (else
    OSError); opened without blocking, as a FIFO's open would until a writer came."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise NotARegularFile(f"{path} is not a regular file")
        if most is not None and status.st_size > most:
            raise OSError(f"{path} is larger than {most} bytes")
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as file:
        return file.read()


def _encoding_named(path: Path) -> str | None:
    """What a notebook that is not UTF-8 most likely is, when its first bytes say so (a file saved
    as UTF-16 by an editor)."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(head) == 4 and b"\x00\x00" in (head[::2], head[1::2])):
        return "it is UTF-16 text; a notebook is UTF-8 (save it as UTF-8)"
    return None


def _parse_json(text: str, path):
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotebookReadError(
            path, f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    except RecursionError:  # the parser recurses once per '[' or '{'
        raise NotebookReadError(path, "not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # a number longer than int() takes (sys.get_int_max_str_digits)
        raise NotebookReadError(path, f"not valid JSON ({exc})") from None
    if LONE_SURROGATE.search(text) and not _is_text(data):
        # JSON can spell half a UTF-16 pair on its own ("\ud800"); Python keeps it, but no file,
        # terminal or YAML takes it, so it would fail later, far from here, while printing
        raise NotebookReadError(path, "not valid JSON (a string holds a lone UTF-16 surrogate)")
    return data


def _is_text(data) -> bool:
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def notebook_from_dict(data, path="notebook.ipynb") -> Notebook:
    if not isinstance(data, dict) or "nbformat" not in data:
        raise NotebookReadError(path, "not a Jupyter notebook (no 'nbformat' field)")
    major = data.get("nbformat")
    if major == 3:
        data = _upgrade_v3(data, path)
    elif major != 4:
        raise NotebookReadError(path, f"nbformat {major!r} is not supported (only v4, and v3 upgraded)")
    _check_shape(data, path)
    if not isinstance(data.get("metadata") or {}, dict):
        raise NotebookReadError(path, "not a Jupyter notebook ('metadata' is not a mapping)")
    cells = tuple(_cell(i, raw, path) for i, raw in enumerate(data["cells"]))
    return Notebook(path=str(path), cells=cells, metadata=data.get("metadata") or {})


def _upgrade_v3(data, path):
    import nbformat  # only old notebooks pay for the import

    try:
        node = nbformat.from_dict(data)
        return nbformat.convert(node, 4)
    except Exception as exc:  # nbformat raises several unrelated types here
        raise NotebookReadError(path, f"nbformat v3 notebook could not be upgraded: {exc}") from None


def _check_shape(data, path):
    # A structural check of what the compiler relies on; full schema validation (nbformat's
    # jsonschema) costs more than the whole analysis of a large notebook.
    cells = data.get("cells")
    if not isinstance(cells, list):
        raise NotebookReadError(path, "not a Jupyter notebook ('cells' is not a list)")
    for i, cell in enumerate(cells):
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            raise NotebookReadError(path, f"{cell_label(i)} is malformed (missing or unknown 'cell_type')")
        source = cell.get("source", "")
        if not isinstance(source, str) and not (
            isinstance(source, list) and all(isinstance(s, str) for s in source)
        ):
            raise NotebookReadError(path, f"{cell_label(i)} is malformed ('source' is not text)")
        meta = cell.get("metadata", {})
        if not isinstance(meta, dict):
            raise NotebookReadError(path, f"{cell_label(i)} is malformed ('metadata' is not a mapping)")
        tags = meta.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise NotebookReadError(path, f"{cell_label(i)} is malformed ('metadata.tags' is not a list of text)")


def _cell(index, raw, path) -> Cell:
    source = raw.get("source", "")
    if isinstance(source, list):
        source = "".join(source)
    tags = tuple(t.strip() for t in raw.get("metadata", {}).get("tags", []) if t.strip())
    return Cell(index=index, cell_type=raw["cell_type"], source=source, tags=tags)
