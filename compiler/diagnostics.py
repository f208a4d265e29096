"""Diagnostics: what the compiler found wrong or could not prove, pointing at cell and line."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .notebook import cell_label

ERROR = "error"
WARNING = "warning"
INFO = "info"  # worth knowing, nothing to fix: the pipeline does what a top-to-bottom run does

# Every diagnostic code the compiler emits, with its severity. One table, so docs and tests
# cannot disagree with the code.
CODES = {
    "syntax-error": ERROR,
    "undefined-name": ERROR,
    "duplicate-step": ERROR,
    "unknown-tag": ERROR,
    "bad-tag-value": ERROR,
    "misplaced-tag": ERROR,
    "misplaced-magic": ERROR,
    "cycle": ERROR,
    "after-missing-step": ERROR,
    "bad-parameter": ERROR,
    "bad-metric": ERROR,
    "bad-metadata": ERROR,
    "duplicate-metrics": ERROR,
    "dynamic-code": WARNING,
    "duplicate-parameter": WARNING,
    "credential-default": WARNING,
    "credential-in-code": WARNING,
    "kfp-file-handoff": WARNING,
    "kfp-accelerator": WARNING,
    "kale-pod-metadata": WARNING,
    "empty-step": WARNING,
    "tags-on-text-cell": WARNING,
    "global-seed": WARNING,
    "prelude-seed-repeats": WARNING,
    "setting-not-replayed": WARNING,
    "prelude-logging": WARNING,
    "pyplot-current-figure": WARNING,
    "prelude-object-changed": WARNING,
    "prelude-reads-step-file": WARNING,
    "generator-handed-on": WARNING,
    "conflicting-option": WARNING,
    "ambiguous-name": INFO,
    "nothing-to-run": INFO,
}


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    cell: int | None = None
    line: int | None = None
    col: int | None = None
    hint: str | None = None

    @property
    def severity(self) -> str:
        return CODES[self.code]

    def location(self, notebook: str = "") -> str:
        parts = [notebook] if notebook else []
        if self.cell is not None:
            parts.append(cell_label(self.cell))
            if self.line is not None:
                parts.append(str(self.line))
                if self.col is not None:
                    parts.append(str(self.col))
        return ":".join(parts)

    def format(self, notebook: str = "", *, hint: bool = True) -> str:
        """`file:cell N:line:col: severity[code]: message`, the one way a diagnostic is printed
        (N as JupyterLab numbers the cell: `cell` + 1)."""
        text = f"{self.location(notebook)}: {self.severity}[{self.code}]: {self.message}"
        return text + (f"\n    hint: {self.hint}" if hint and self.hint else "")

    def to_json(self) -> dict:
        data = asdict(self)
        return {"severity": self.severity, **data}

    @classmethod
    def from_json(cls, data: dict) -> Diagnostic:
        return cls(**{k: v for k, v in data.items() if k != "severity"})


def errors_text(diagnostics, notebook: str) -> str:
    """The error diagnostics of `notebook`, one per line under a heading (for exception messages)."""
    errors = [d for d in diagnostics if d.severity == ERROR]
    return f"{notebook} has {len(errors)} error(s):\n" + "\n".join(f"  {d.format(notebook)}" for d in errors)
