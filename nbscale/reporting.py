"""What the command line prints, and the exit code it ends with.

One place maps error classes to exit codes (`exit_code_for`, used by `reporting_errors`) and
prints diagnostics, a run's steps and a step's error, so `check`, `compile`, `graph`, `run`,
`show` and `submit` speak alike. Text a notebook controls (names, values, exception messages, what
a step printed) is printed through `literal`: a terminal shows its escape codes, never obeys them.
"""

from __future__ import annotations

import signal
import sys
import unicodedata
from contextlib import contextmanager

import click

from .errors import NbscaleError
from .kernels.errors import Terminated

EXIT_OK = 0
# the notebook has errors (check, compile, graph), a run failed (or its record was lost: the state
# folder was deleted during the run), the KFP endpoint refused
EXIT_FAILED = 1
# not a usable notebook, bad arguments, parameters, settings or files (a damaged or read-only run
# store); unknown plug-in
EXIT_BAD_INPUT = 2
# the run or check succeeded but found what the caller asked to fail on: a regressed metric
# (`nbscale run --fail-on-regression`), drifted data (`nbscale drift --fail-on-drift`)
EXIT_CHECK_FAILED = 3
EXIT_CANCELLED = 130  # Ctrl-C, as a shell reports SIGINT
# Unicode bidirectional controls: they can reorder what a terminal shows.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# what multi-line text (a traceback, a step's output) keeps: its lines and their indentation
LINE_LAYOUT = "\n\t"


def exit_code_for(exc: BaseException) -> int:
    """The exit code of an error: an error may name its own (`exit_code`), else bad input."""
    return getattr(exc, "exit_code", EXIT_BAD_INPUT)


def fail(message: str, code: int = EXIT_BAD_INPUT):
    click.echo(literal_lines(message), err=True)  # (paths, names, a server's words: any text)
    sys.exit(code)


@contextmanager
def reporting_errors():
    """Turn nbscale's errors into one `error: ...` line and their exit code; Ctrl-C into 130,
    SIGTERM (where `kernels.interrupts` turns it into `Terminated`) into 143."""
    try:
        yield
    except NbscaleError as exc:
        fail(f"error: {literal_lines(str(exc))}", exit_code_for(exc))  # it may quote a notebook's value
    except Terminated as exc:  # SIGTERM, or SIGHUP (`HungUp`): 143, 129, as a shell reports them
        cancelled(f"cancelled: stopped by {exc.signal_name}", 128 + getattr(signal, exc.signal_name))
    except KeyboardInterrupt:
        cancelled("cancelled", EXIT_CANCELLED)


def cancelled(message: str, code: int) -> None:
    """Say it and exit, without waiting for threads a cancelled step left running."""
    from .kernels.interrupts import exit_without_waiting

    click.echo(message, err=True)
    exit_without_waiting(code)


def print_diagnostics(pipeline, path, *, err: bool = True) -> None:
    for diag in pipeline.diagnostics:
        click.echo(literal_lines(diag.format(str(path))), err=err)  # it may quote a cell's tag or text


def error_counts(pipeline) -> tuple[int, int]:
    """(errors, warnings); infos are neither."""
    errors = sum(d.severity == "error" for d in pipeline.diagnostics)
    return errors, sum(d.severity == "warning" for d in pipeline.diagnostics)


def duration_text(seconds) -> str:
    """`1.25s`; "-" for none, or for what a damaged run store holds instead of a number."""
    return f"{seconds:.2f}s" if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) else "-"


def error_headline(error: dict) -> str:
    """One line for a step's error (the dict of `contract.error_dict`): where, when a cell is known
    (a worker that died has none), as JupyterLab numbers the cell, then what."""
    from .compiler.notebook import cell_label  # here, not at import: `nbscale --help` loads no compiler

    where = f"at {cell_label(error['cell'], error.get('line'))}: " if error.get("cell") is not None else ""
    return f"{where}{error.get('ename')}: {error.get('evalue')}"


def literal(value: str, keep: str = "") -> str:
    """`value` with control characters (ANSI and OSC escapes among them) and bidi controls written
    as escapes (`\\x1b`), but for those in `keep`. The one sanitiser of what the CLI prints."""
    return "".join(char.encode("unicode_escape").decode("ascii")
                   if (unicodedata.category(char) == "Cc" or char in BIDI_CONTROLS) and char not in keep
                   else char for char in value)


def literal_lines(text: str) -> str:
    """Multi-line `text` (a traceback, a step's output) shown literally, its newlines and tabs kept."""
    return literal(text, keep=LINE_LAYOUT)
