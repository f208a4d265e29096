"""What a finished step printed and showed, as a run keeps it: a log file, images, warnings.

The engines hand back each cell's outputs as nbformat outputs (`capture.StepRun.cell_outputs`, or a
papermill output notebook). `write_step_log` writes them once, cell by cell, as text to the step's
log in the state folder (`contract.step_log_path`): streams as printed, a result or a display as
its text/plain, an image as a file beside the log ("[image/png saved to PATH]"). The run store keeps
at most `contract.STORED_OUTPUT_CHARS` of each stream (`contract.truncated_text` points to the
log). `warnings_in` finds the Python warnings the cells showed on their stderr.

Beside the log, `write_step_log` writes the same outputs as data (`cells_json_path`, read by the
panel's step detail): per cell, its streams, text results, warnings and the file names of its
images. Only text and image file names: never a cell's HTML or other rich markup.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path

from ..compiler.notebook import cell_label, cell_number
from .contract import STORED_OUTPUT_CHARS, truncated_text
from .runschema import utf8_json

__all__ = ["CELLS_FORMAT", "IMAGE_TYPES", "OutputSoFar", "cell_records", "cells_json_path", "image_file_name",
           "log_text", "warnings_in", "write_step_log"]

IMAGE_TYPES = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/svg+xml": "svg"}
RICH_OUTPUTS = ("display_data", "execute_result")


def write_step_log(path: Path, step: str, summary: dict) -> Path | None:
    """Write the step's log (and its images beside it) from its summary; None when it showed nothing."""
    cells = summary.get("cells") or []
    if not any(c.get("outputs") for c in cells) and not summary.get("stdout") and not summary.get("stderr"):
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    if cells:
        text = log_text(cells, lambda cell, n, mime, data: _save_image(path.parent, step, cell, n, mime, data))
    else:  # an engine that keeps no per-cell outputs
        text = (summary.get("stdout") or "") + (summary.get("stderr") or "")
    path.write_text(text, encoding="utf-8")
    _write_cells_json(path, step, cells)
    return path


class OutputSoFar:
    """What running steps have printed so far, from their live output (STEP_OUTPUT events): a step
    stopped while it runs (Ctrl-C, Cancel, a run that fails) hands back no outputs, and what it
    printed before is then all there is of its log. Keeps the last `limit` characters per stream."""

    def __init__(self, limit: int = STORED_OUTPUT_CHARS):
        self.limit = limit
        self.parts: dict[str, dict[str, list[str]]] = {}  # step → stream → texts
        self.sizes: dict[tuple[str, str], int] = {}
        self.dropped: dict[tuple[str, str], int] = {}

    def add(self, step: str, stream, text) -> None:
        if not isinstance(text, str) or not text or stream not in ("stdout", "stderr"):
            return
        parts = self.parts.setdefault(step, {}).setdefault(stream, [])
        parts.append(text)
        key = (step, stream)
        self.sizes[key] = self.sizes.get(key, 0) + len(text)
        if self.sizes[key] > 2 * self.limit:  # (joined now and then, not per write)
            kept = "".join(parts)[-self.limit:]
            self.dropped[key] = self.dropped.get(key, 0) + self.sizes[key] - len(kept)
            parts[:], self.sizes[key] = [kept], len(kept)

    def forget(self, step: str) -> None:
        """The step ended and handed back all it printed."""
        for stream in self.parts.pop(step, {}):
            self.sizes.pop((step, stream), None)
            self.dropped.pop((step, stream), None)

    def take(self, step: str) -> dict[str, str]:
        """{"stdout": text, "stderr": text} the step printed so far (as a summary's streams), and forget it."""
        taken = {}
        for stream, parts in self.parts.get(step, {}).items():
            text = "".join(parts)
            dropped = self.dropped.get((step, stream), 0) + max(0, len(text) - self.limit)
            text = text[-self.limit:]
            taken[stream] = f"[… {dropped:,} earlier characters not kept]\n{text}" if dropped else text
        self.forget(step)
        return taken


def log_text(cells: list[dict], save_image) -> str:
    """The cells' outputs as text, in order, each cell under a header line.
    `save_image(cell, n, mime, data)` stores the n-th image of a cell and returns its path."""
    parts: list[str] = []
    for entry in cells:
        if not entry.get("outputs"):
            continue
        parts.append(f"── {cell_label(entry['cell'])} ──\n")
        images = 0
        for output in entry["outputs"]:
            if output.get("output_type") == "stream":
                parts.append(_joined(output.get("text")))
            elif output.get("output_type") in RICH_OUTPUTS:
                data = output.get("data") or {}
                image = next((m for m in IMAGE_TYPES if m in data), None)
                if image is not None:
                    images += 1
                    parts.append(f"[{image} saved to {save_image(entry.get('cell'), images, image, data[image])}]\n")
                elif "text/plain" in data:
                    parts.append(_joined(data["text/plain"]) + "\n")
                elif data:
                    parts.append(f"[{', '.join(sorted(data))} output]\n")
            elif output.get("output_type") == "error":  # a papermill cell's failure
                parts.append(f"{output.get('ename')}: {output.get('evalue')}\n")
            if parts and not parts[-1].endswith("\n"):
                parts.append("\n")
    return "".join(parts)


def _joined(text) -> str:
    return "".join(text) if isinstance(text, list) else str(text or "")  # nbformat may split text in lines


def image_file_name(step: str, cell, n: int, mime: str) -> str:
    """The file (in the step's log folder) of the n-th image (from 1) a cell of the step showed,
    named with the cell's number as JupyterLab shows it (the log's header above it says the same)."""
    return f"{step}-cell{cell_number(cell)}-{n}.{IMAGE_TYPES[mime]}"


def _save_image(folder: Path, step: str, cell, n: int, mime: str, data) -> Path:
    path = folder / image_file_name(step, cell, n, mime)
    text = _joined(data)
    if mime == "image/svg+xml":
        path.write_text(text, encoding="utf-8")
    else:
        try:
            path.write_bytes(base64.b64decode(text))
        except (binascii.Error, ValueError):
            path.write_text(text, encoding="utf-8")
    return path


# `warnings.formatwarning`: "FILE:LINE: CATEGORY: MESSAGE" and, when the source is known, "  SOURCE LINE"
_WARNING = re.compile(r"^(?P<file>\S[^\n]*?):(?P<line>\d+): (?P<category>\w*Warning): (?P<message>.*)$")


def warnings_in(cells: list[dict]) -> list[dict]:
    """The Python warnings the cells showed on their stderr, in order, each once (as Python's
    default filter shows a warning once per place and message): {"cell", "line", "category",
    "message", "where"}. `line` is the line of the cell for a warning raised by the cell's own
    code; `where` is the warning's place as text ("cell 4, line 2", or a library's file:line)."""
    found, seen = [], set()
    for entry in cells:
        for output in entry.get("outputs", ()):
            if output.get("output_type") != "stream" or output.get("name") != "stderr":
                continue
            for text_line in "".join(output.get("text") or "").splitlines():
                match = _WARNING.match(text_line)
                if match is None:
                    continue
                warning = _warning(entry.get("cell"), match)
                key = (warning["where"], warning["category"], warning["message"])
                if key not in seen:
                    seen.add(key)
                    found.append(warning)
    return found


def _warning(cell, match) -> dict:
    from .tracebacks import cell_location  # IPython: imported only when a warning is there

    filename, lineno = match["file"], int(match["line"])
    location = cell_location(filename, lineno)
    if location is not None:
        cell, line = location
        where = cell_label(cell, line)
    else:
        line, where = None, f"{filename}:{lineno}"
    return {"cell": cell, "line": line, "category": match["category"], "message": match["message"],
            "where": where}


# --- the outputs as data, for the panel's step detail -------------------------------------------------

CELLS_FORMAT = 1
CELL_TEXT_CHARS = 200_000  # of one stream or result in the JSON; the log keeps it all
# a warning as `warnings.showwarning` prints it: the formatted line, then maybe an indented source line
_WARNING_BLOCK = re.compile(r"^\S[^\n]*?:\d+: \w*Warning: [^\n]*\n(?:  [^\n]*\n)?", re.MULTILINE)


def cells_json_path(log_path: Path) -> Path:
    """The structured twin of a step's log (`contract.step_log_path`): `STEP.cells.json`."""
    return log_path.with_name(f"{log_path.stem}.cells.json")


def _write_cells_json(log_path: Path, step: str, cells: list[dict]) -> None:
    records = cell_records(step, cells, log_path)
    data = {"format": CELLS_FORMAT, "step": step, "cells": records}
    cells_json_path(log_path).write_text(utf8_json(data), encoding="utf-8")


def cell_records(step: str, cells: list[dict], log_path=None) -> list[dict]:
    """Each cell that showed something, in order: `{"cell", "outputs", "warnings"}`. An output is
    `{"type": "stream", "name", "text"}`, `{"type": "text", "text"}` (a result's or display's
    text/plain), `{"type": "image", "mime", "file"}` (named as `write_step_log` saves it),
    `{"type": "error", "ename", "evalue"}` or `{"type": "other", "mimes"}`. The Python warnings
    a cell showed are in `warnings` (as `warnings_in` finds them) and left out of its stderr."""
    records = []
    for entry in cells:
        if not entry.get("outputs"):
            continue
        cell = entry.get("cell")
        outputs = [o for o in _records(step, cell, entry["outputs"], log_path) if o is not None]
        records.append({"cell": cell, "outputs": outputs, "warnings": warnings_in([entry])})
    return records


def _records(step: str, cell, outputs: list[dict], log_path):
    images = 0
    for output in outputs:
        kind = output.get("output_type")
        if kind == "stream":
            text = _joined(output.get("text"))
            if output.get("name") == "stderr":
                text = _WARNING_BLOCK.sub("", text)
            yield {"type": "stream", "name": output.get("name") or "stdout",
                   "text": truncated_text(text, log_path, CELL_TEXT_CHARS)} if text else None
        elif kind in RICH_OUTPUTS:
            data = output.get("data") or {}
            image = next((m for m in IMAGE_TYPES if m in data), None)
            if image is not None:
                images += 1
                yield {"type": "image", "mime": image, "file": image_file_name(step, cell, images, image)}
            elif "text/plain" in data:
                yield {"type": "text", "text": truncated_text(_joined(data["text/plain"]), log_path, CELL_TEXT_CHARS)}
            elif data:
                yield {"type": "other", "mimes": sorted(data)}
        elif kind == "error":
            yield {"type": "error", "ename": str(output.get("ename") or ""), "evalue": str(output.get("evalue") or "")}
