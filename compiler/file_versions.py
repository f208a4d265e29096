"""Versions of a file several steps write: which steps run together, and which checks say nothing.

A file a step writes and later steps append to (or edit in place, `open(P, "r+")`) is whole only
when they all ran, in order. One a later step writes anew (or appends to) holds, at the end of a
run, only its last version: the version an earlier step wrote or read is gone. So:

- a step whose version of a file is gone is not checked against the file as it is when a run is
  planned (it holds a later version: the check would fail at every run, and the steps that write
  the file would run again each time); the stored result stands while the step that made that
  version stands;
- the steps of one version that is gone, or of a file built by appending (its writer, its
  appenders and the steps that read it in between), run together: when one of them has to run,
  the others run too, in order, so that each finds the file as a run top to bottom would. The
  next step that writes the file anew comes after them (`file_edges.file_order`), and runs again
  when it finds the file changed.

A file no step writes anew (a log steps append to, data the notebook reads) has no versions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .file_edges import database_edits, edited_in_place, named_paths, step_writes

WRITE, APPEND, EDIT, READ = "write", "append", "edit", "read"


@dataclass
class FileVersions:
    together: list[tuple[str, list[str]]] = field(default_factory=list)  # (file, the steps that run together)
    gone: dict[str, set[str]] = field(default_factory=dict)  # step → files whose version it used is gone
    # step → files it uses that an earlier step wrote anew: what it read of one it then changed came from
    # that step (made again by it, or this step's own last version, at every run), no state it advances
    made_before: dict[str, set[str]] = field(default_factory=dict)
    written: set[str] = field(default_factory=set)  # every file a step writes, appends to or changes, as named


def file_versions(steps: list[tuple[str, list[str]]]) -> FileVersions:
    """`steps`: (name, its cells' sources) in notebook order."""
    writes = [step_writes(sources) for _, sources in steps]
    versions = FileVersions(written={path for written in writes for path in written})
    for path, uses in _uses(steps, writes).items():
        first = next((i for i, (_, use) in enumerate(uses) if use == WRITE), None)
        for name, _ in uses[first + 1:] if first is not None else ():
            versions.made_before.setdefault(name, set()).add(path)
        segments = _versions(uses)
        for index, segment in enumerate(segments):
            builds = [i for i, (_, use) in enumerate(segment) if use in (APPEND, EDIT)]
            if index < len(segments) - 1:  # written anew later: this version is gone
                members, gone = segment, segment
            elif builds:  # the last version, built on: readers before the last append or edit read a part
                members = segment[:builds[-1] + 1]
                # after an edit in place the file is the editor's product (its check finds the file
                # gone or changed), no longer what the steps before it made
                last_edits = members[-1][1] == EDIT
                gone = [(name, use) for name, use in members[:-1] if use == READ or last_edits]
            else:
                continue
            for name, _ in gone:
                versions.gone.setdefault(name, set()).add(path)
            if len(members) > 1:
                versions.together.append((path, [name for name, _ in members]))
    return versions


def _uses(steps, writes: list[dict[str, bool]]) -> dict[str, list[tuple[str, str]]]:
    """File → (step, how it uses the file) in notebook order, for the files some step writes anew
    (`writes`: each step's `step_writes`)."""
    anew = {path for written in writes for path, appends in written.items() if not appends}
    if not anew:
        return {}
    parts = {part for path in anew for part in path.split("/")}
    uses: dict[str, list[tuple[str, str]]] = {}
    for (name, sources), written in zip(steps, writes):
        named = named_paths(sources, parts)
        # (builds on the file, as an append)
        edited = set().union(database_edits(sources), *(edited_in_place(source) for source in sources))
        for path in sorted((named | set(written)) & anew):
            use = READ if path not in written else EDIT if path in edited else APPEND if written[path] else WRITE
            uses.setdefault(path, []).append((name, use))
    return uses


def _versions(uses: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """The uses split where a step writes the file anew; uses before the first one (of the file the
    notebook found, or of a log) are no version of the pipeline's."""
    segments: list[list[tuple[str, str]]] = []
    for name, use in uses:
        if use == WRITE or use == EDIT and not segments:  # (the first step changing a database the notebook finds)
            segments.append([(name, use)])
        elif segments:
            segments[-1].append((name, use))
    return segments
