"""Diagnostics: one table of codes, one way to print them, one heading for exception messages."""

from __future__ import annotations

from nbscale.compiler.diagnostics import CODES, Diagnostic, errors_text


def test_a_diagnostic_prints_with_its_place_severity_code_and_hint():
    diag = Diagnostic("undefined-name", "name 'x' is not defined", cell=4, line=2, col=7, hint="define x earlier")
    assert diag.format("nb.ipynb") == "nb.ipynb:cell 4:2:7: error[undefined-name]: name 'x' is not defined\n" \
                                      "    hint: define x earlier"
    assert diag.format("nb.ipynb", hint=False).endswith("is not defined")
    assert Diagnostic.from_json(diag.to_json()) == diag and diag.to_json()["severity"] == CODES["undefined-name"]


def test_errors_text_lists_errors_only():
    diags = [Diagnostic("undefined-name", "bad", cell=1, line=1), Diagnostic("empty-step", "empty", cell=2)]
    text = errors_text(diags, "nb.ipynb")
    assert text.splitlines() == ["nb.ipynb has 1 error(s):", "  nb.ipynb:cell 1:1: error[undefined-name]: bad"]


def test_every_code_has_one_of_three_severities_and_info_is_no_error():
    assert set(CODES.values()) == {"error", "warning", "info"}
    assert {c for c, s in CODES.items() if s == "info"} == {"ambiguous-name", "nothing-to-run"}
    assert CODES["global-seed"] == CODES["setting-not-replayed"] == "warning"
    assert Diagnostic("nothing-to-run", "nothing to run").format("nb.ipynb") == \
        "nb.ipynb: info[nothing-to-run]: nothing to run"
