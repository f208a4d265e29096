"""Writing results into docs/benchmarks.md: each script owns one section between its markers;
numbers are formatted the same way in every section."""

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


def publish(section: str, doc: Path, start: str, end: str, write: bool = True) -> None:
    """Print a script's section and, unless told not to (`--no-doc`), put it into `doc`."""
    print(section)
    if write:
        replace_section(doc, start, end, section)
        print(f"updated {doc.name}")


def usage_note(usage: dict) -> str:
    """How busy the machine was while a part ran (bench/common.py's sampler: other cores, load)."""
    return (f"*Machine during this part: other processes used {usage['other_cores']:.2f} cores on average; "
            f"load average {usage['load_start']:.1f} → {usage['load_end']:.1f}.*")


def produced_by(command: str, revision: str, machine: dict, extra: str = "") -> str:
    """The line that says what produced a section: the command, the revision and the machine."""
    return (f"Produced by `{command}` on {machine['date']} at {revision}; machine: `nproc` {machine['nproc']}, "
            f"{machine['cpu']}, {machine['memory_gib']:.0f} GiB, Python {machine['python']} ({machine['system']})"
            + (f", {extra}" if extra else "") + ".")


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table: the first column left-aligned, the others (numbers) right-aligned."""
    return ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1),
            *("| " + " | ".join(row) + " |" for row in rows)]


def sec(v, digits=2) -> str:
    return "—" if v is None else f"{v:.{digits}f} s"


def ms(v) -> str:
    if v is None:
        return "—"
    return f"{v * 1000:,.0f} ms" if abs(v) >= 0.01 else f"{v * 1000:.1f} ms"


def duration(v) -> str:
    """Milliseconds below a second, seconds above."""
    return ms(v) if v is None or abs(v) < 1 else sec(v)


def ratio(a, b) -> str:
    """a / b as '1.23×' ('—' when either is missing)."""
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.2f}×"


def gbps(nbytes, seconds):
    return nbytes / seconds / 1e9 if seconds else None
