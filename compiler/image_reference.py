"""Container image references (the `image:` tag, KFP's `base_image`): the grammar of Docker's
distribution reference (`[REGISTRY[:PORT]/]NAME[:TAG][@DIGEST]`), checked where the value is
written, so that a typo, a space or a terminal escape code is an error at its cell, not a pipeline
whose steps cannot pull their image."""

from __future__ import annotations

import re

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_REGISTRY = rf"(?:{_HOST_PART}(?:\.{_HOST_PART})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
# Docker's grammar is ASCII only: explicit classes, and re.ASCII so no part can widen to Unicode
# (`python:３` or `python:café` would be written into a pipeline whose steps cannot pull it)
_REFERENCE = re.compile(rf"(?:{_REGISTRY}/)?(?P<name>{_COMPONENT}(?:/{_COMPONENT})*)(?::{_TAG})?(?:@{_DIGEST})?",
                        re.ASCII)
MAX_NAME = 255  # characters of the registry and name together, as Docker allows

EXAMPLE = "python:3.11-slim, ghcr.io/org/app:1.2, registry:5000/team/img@sha256:<64 hex digits>"


def image_problem(text: str) -> str | None:
    """Why `text` is no image reference, or None when it is one."""
    match = _REFERENCE.fullmatch(text) if len(text) <= 4 * MAX_NAME else None
    if match is None:
        return f"not an image reference ([REGISTRY/]NAME[:TAG][@DIGEST], lower-case name; e.g. {EXAMPLE})"
    if match.end("name") > MAX_NAME:
        return f"an image name of more than {MAX_NAME} characters"
    return None
