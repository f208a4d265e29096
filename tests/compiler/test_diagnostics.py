"""Diagnostics: one table of codes, one way to print them, one heading for exception messages."""

from __future__ import annotations

from nbscale.compiler import compile_notebook
from nbscale.compiler.diagnostics import CODES, Diagnostic, errors_text
from nbscale.compiler.notebook import notebook_from_dict


def compiled(*cells):
    """The pipeline of a notebook of (cell_type, source) cells."""
    raw = [{"cell_type": kind, "source": source, "metadata": {}} for kind, source in cells]
    return compile_notebook(notebook_from_dict({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": raw}))


def test_a_diagnostic_prints_with_its_place_severity_code_and_hint():
    diag = Diagnostic("undefined-name", "name 'x' is not defined", cell=4, line=2, col=7, hint="define x earlier")
    # cell is the 0-based index; the text numbers cells as JupyterLab does, from 1
    assert diag.format("nb.ipynb") == "nb.ipynb:cell 5:2:7: error[undefined-name]: name 'x' is not defined\n" \
                                      "    hint: define x earlier"
    assert diag.format("nb.ipynb", hint=False).endswith("is not defined")
    assert Diagnostic.from_json(diag.to_json()) == diag and diag.to_json()["severity"] == CODES["undefined-name"]


def test_errors_text_lists_errors_only():
    diags = [Diagnostic("undefined-name", "bad", cell=1, line=1), Diagnostic("empty-step", "empty", cell=2)]
    text = errors_text(diags, "nb.ipynb")
    assert text.splitlines() == ["nb.ipynb has 1 error(s):", "  nb.ipynb:cell 2:1: error[undefined-name]: bad"]


def test_every_code_has_one_of_three_severities_and_info_is_no_error():
    assert set(CODES.values()) == {"error", "warning", "info"}
    assert {c for c, s in CODES.items() if s == "info"} == {"ambiguous-name", "nothing-to-run"}
    assert CODES["global-seed"] == CODES["setting-not-replayed"] == "warning"
    assert Diagnostic("nothing-to-run", "nothing to run").format("nb.ipynb") == \
        "nb.ipynb: info[nothing-to-run]: nothing to run"


def test_a_diagnostic_names_the_cell_as_jupyterlab_numbers_it():
    # JupyterLab's status bar says "Cell 1/2" for the first cell and counts markdown cells too
    first = compiled(("code", "print(missing)"), ("markdown", "# Notes")).diagnostics
    assert [(d.cell, d.location("nb.ipynb")) for d in first] == [(0, "nb.ipynb:cell 1:1:7")]
    after_markdown = compiled(("markdown", "# Title"), ("code", "print(missing)")).diagnostics
    assert [(d.cell, d.location()) for d in after_markdown] == [(1, "cell 2:1:7")]
