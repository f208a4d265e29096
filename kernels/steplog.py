"""What a finished step printed and showed, as a run keeps it: a log file, images, warnings.

The engines hand back each cell's outputs as nbformat outputs (`capture.StepRun.cell_outputs`, or a
papermill output notebook). `write_step_log` writes them once, cell by cell, as text to the step's
log in the state folder (`contract.step_log_path`): streams as printed, a result or a display as
its text/plain, an image as a file beside the log ("[image/png saved to PATH]"). The run store keeps
at most `contract.STORED_OUTPUT_CHARS` of each stream (`contract.truncated_text` points to the
log). `warnings_in` finds the Python warnings the cells showed on their stderr.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path

__all__ = ["IMAGE_TYPES", "log_text", "warnings_in", "write_step_log"]

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
    return path


def log_text(cells: list[dict], save_image) -> str:
    """The cells' outputs as text, in order, each cell under a header line.
    `save_image(cell, n, mime, data)` stores the n-th image of a cell and returns its path."""
    parts: list[str] = []
    for entry in cells:
        if not entry.get("outputs"):
            continue
        parts.append(f"── cell {entry.get('cell')} ──\n")
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


def _save_image(folder: Path, step: str, cell, n: int, mime: str, data) -> Path:
    path = folder / f"{step}-cell{cell}-{n}.{IMAGE_TYPES[mime]}"
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
        where = f"cell {cell}, line {line}" if line is not None else f"cell {cell}"
    else:
        line, where = None, f"{filename}:{lineno}"
    return {"cell": cell, "line": line, "category": match["category"], "message": match["message"],
            "where": where}
