"""docs/benchmarks.md is shared by the benchmark scripts: each owns the section between its markers."""

from __future__ import annotations

import re
from pathlib import Path


def replace_section(doc: Path, start: str, end: str, section: str) -> None:
    """Put `section` (which begins with `start` and ends with `end`) in place of the old one."""
    text = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    doc.write_text(text, encoding="utf-8")
