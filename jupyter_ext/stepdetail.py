"""One step of one run in detail, for the panel's step view, and the images its cells showed.

`step_detail` joins what the run store says of the step (status, duration, attempts, why it re-ran,
its error) with what its cells showed (`kernels.steplog`'s `STEP.cells.json` beside its log) and
the sizes of the values it took and gave (the artifact store's manifests). `step_image` hands out
only an image file that the step's own cells JSON names, from the run's log folder: never another
file, never through a symbolic link, never from a log folder that leads out of the server's root.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import stat
from pathlib import Path

from nbscale.kernels.contract import artifacts_url, logs_dir, step_log_path
from nbscale.kernels.steplog import IMAGE_TYPES, cells_json_path

from .errors import NotFound

MIME_OF_SUFFIX = {f".{suffix}": mime for mime, suffix in IMAGE_TYPES.items()}
MAX_IMAGE_BYTES = 50_000_000


async def step_detail(runs, notebooks, notebook: Path, run_id: str, step: str) -> dict:
    """StepDetail: the step's StepRun fields, `run_id`, `cells` (steplog's records), `inputs`
    (`{name, from, bytes}`: `from` is the step that made it, or null for a parameter) and `outputs`
    (`{name, bytes, marshaller}`); sizes are null where the artifact store has none."""
    detail = await runs.detail(notebook, run_id)
    row = next((s for s in detail["steps"] if s["name"] == step), None)
    if row is None:
        raise NotFound(f"run {detail['run_id'][:12]} has no step {step!r}")
    full_id = detail["run_id"]
    cells = await asyncio.to_thread(_cells, notebooks, notebook, full_id, step)
    hashes = await asyncio.to_thread(_hashes, runs, notebook, full_id)
    pipeline = await _pipeline(notebooks, notebook)
    sizes = await asyncio.to_thread(_output_sizes, notebook, hashes)
    return {**row, "run_id": full_id, "cells": cells,
            "inputs": _inputs(pipeline, step, sizes), "outputs": _outputs(step, sizes)}


async def step_image(runs, notebook: Path, run_id: str, step: str, name: str) -> tuple[bytes, str]:
    """(bytes, mime type) of an image the step's cells showed; NotFound for any other name."""
    detail = await runs.detail(notebook, run_id)
    if not any(s["name"] == step for s in detail["steps"]):
        raise NotFound(f"run {detail['run_id'][:12]} has no step {step!r}")
    return await asyncio.to_thread(_read_image, runs.notebooks, notebook, detail["run_id"], step, name)


def _log_folder(notebooks, notebook: Path, run_id: str) -> Path | None:
    """The run's log folder, its links followed, if it stays inside the server's root: a folder
    swapped for a link out of the root after the run is read through by nobody (None)."""
    folder = logs_dir(notebook, run_id)
    real = Path(os.path.realpath(folder))
    return real if real.is_relative_to(notebooks.root) else None


def _cells(notebooks, notebook: Path, run_id: str, step: str) -> list[dict]:
    folder = _log_folder(notebooks, notebook, run_id)
    if folder is None:
        return []
    try:
        with _open_plain(folder / cells_json_path(step_log_path(notebook, run_id, step)).name) as file:
            data = json.loads(file.read().decode("utf-8"))
    except (OSError, ValueError):  # no outputs, an older run, or a damaged file: nothing to show
        return []
    cells = data.get("cells") if isinstance(data, dict) else None
    return cells if isinstance(cells, list) else []


def _image_names(cells: list[dict]) -> set[str]:
    return {o.get("file") for c in cells if isinstance(c, dict) for o in c.get("outputs") or []
            if isinstance(o, dict) and o.get("type") == "image" and isinstance(o.get("file"), str)}


def _read_image(notebooks, notebook: Path, run_id: str, step: str, name: str) -> tuple[bytes, str]:
    missing = NotFound(f"step {step!r} showed no image {name!r}")
    mime = MIME_OF_SUFFIX.get(Path(name).suffix.lower())
    # only a plain file name the step's JSON lists, with an image's suffix
    if mime is None or name != Path(name).name or name.startswith(".") or "\\" in name:
        raise missing
    folder = _log_folder(notebooks, notebook, run_id)
    if folder is None or name not in _image_names(_cells(notebooks, notebook, run_id, step)):
        raise missing
    try:
        with _open_plain(folder / name) as file:
            if os.fstat(file.fileno()).st_size > MAX_IMAGE_BYTES:
                raise missing
            return file.read(), mime
    except OSError:
        raise missing from None


def _open_plain(path: Path):
    """`path` opened for reading if it is a regular file, not a symbolic link (OSError otherwise);
    a FIFO opens without waiting for a writer, and is refused."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    file = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        file.close()
        raise OSError(errno.EINVAL, "not a regular file")
    return file


def _hashes(runs, notebook: Path, run_id: str) -> dict[str, str]:
    """Step → the key its result is stored under in this run."""
    store = runs.store_for(notebook, create=False)
    if store is None:
        return {}
    return {s["step"]: s["hash"] for s in store.get_run(run_id, heavy=False)["steps"] if s.get("hash")}


def _output_sizes(notebook: Path, hashes: dict[str, str]) -> dict[str, dict]:
    """Step → {name: {bytes, marshaller}} from the default artifact store's manifests."""
    from nbscale.errors import NbscaleError
    from nbscale.kernels.store import ArtifactStore

    store = ArtifactStore(artifacts_url(notebook))
    sizes = {}
    for step, key in hashes.items():
        try:
            outputs = store.manifest(key)["outputs"]
        except (NbscaleError, OSError, KeyError):  # not stored (failed, evicted) or unreadable
            continue
        sizes[step] = {name: {"bytes": e.get("bytes"), "marshaller": e.get("marshaller")}
                       for name, e in outputs.items()}
    return sizes


async def _pipeline(notebooks, notebook: Path) -> dict | None:
    try:
        return await notebooks.pipeline_model(notebook)
    except Exception:  # noqa: BLE001 - a notebook that no longer compiles still has its runs
        return None


def _inputs(pipeline: dict | None, step: str, sizes: dict[str, dict]) -> list[dict]:
    if pipeline is None:
        return []
    node = next((s for s in pipeline["steps"] if s["name"] == step), None)
    if node is None:
        return []
    producer = {name: e["from"] for e in pipeline["edges"] if e["to"] == step for name in e["names"]}
    inputs = []
    for name in node["inputs"]:
        source = producer.get(name)
        entry = sizes.get(source, {}).get(name) if source else None
        inputs.append({"name": name, "from": source, "bytes": entry["bytes"] if entry else None})
    return inputs


def _outputs(step: str, sizes: dict[str, dict]) -> list[dict]:
    return [{"name": name, **entry} for name, entry in sorted(sizes.get(step, {}).items())]


def image_headers(mime: str) -> dict[str, str]:
    """Headers of a served image: its type, taken as given, and no script even in an SVG."""
    return {"Content-Type": mime, "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'; style-src 'unsafe-inline'",
            "Cache-Control": "private, max-age=3600"}


__all__ = ["image_headers", "step_detail", "step_image"]
