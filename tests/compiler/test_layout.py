"""Cells → steps: step tags, the notebook-named step, roles and where step options go."""

import nbformat

from nbscale.compiler import compile_notebook, compile_source
from nbscale.compiler.layout import default_step_name, lay_out
from nbscale.compiler.notebook import Cell, Notebook


def layout_of(cells, name="nb"):
    built = []
    for index, cell in enumerate(cells):
        source, tags = (cell, ()) if isinstance(cell, str) else cell
        built.append(Cell(index=index, cell_type="code", source=source, tags=tuple(tags)))
    return lay_out(Notebook(path=f"{name}.ipynb", cells=tuple(built)))


def steps(layout):
    return [(s.name, s.cells) for s in layout.steps]


def codes(diagnostics):
    return [d.code for d in diagnostics]


def test_no_step_tags_is_one_step_named_after_the_notebook():
    p = compile_source(["a = 1", "b = a", "c = b"], name="churn")
    assert [(s.name, s.cells) for s in p.steps] == [("churn", [0, 1, 2])]
    assert not p.diagnostics


def test_notebook_names_become_valid_step_names():
    assert default_step_name("my nb.v2") == "my_nb_v2"
    assert default_step_name("2024-report") == "nb_2024-report"
    assert default_step_name("") == "main"


def test_non_ascii_notebook_names_give_readable_step_names():
    # not a row of '_' (kfp cannot name a component '_'): accents come off, other scripts go
    assert default_step_name("é") == "e"
    assert default_step_name("naïve-bayes") == "naive-bayes"
    assert default_step_name("анализ") == "main"
    assert default_step_name("__") == "main"
    assert default_step_name("анализ данных v2") == "_v2"


def test_untagged_example_is_one_step(examples_dir):
    p = compile_notebook(examples_dir / "untagged.ipynb")
    assert [s.name for s in p.steps] == ["untagged"]


def test_cells_before_the_first_step_tag_form_the_notebook_step():
    layout = layout_of(["a = 1", "b = 2", ("c = a", ["step:use"]), "d = c"], name="demo")
    assert steps(layout) == [("demo", [0, 1]), ("use", [2, 3])]


def test_imports_functions_parameters_before_the_first_step_make_no_step():
    layout = layout_of([
        ("import os", ["imports"]),
        ("def f(x):\n    return x", ["functions"]),
        ("n = 1", ["parameters"]),
        ("a = f(n)", ["step:first"]),
    ])
    assert steps(layout) == [("first", [3])]
    assert layout.prelude == [0, 1]
    assert layout.parameters == [2]


def test_untagged_cells_continue_the_current_step():
    layout = layout_of([("a = 1", ["step:s"]), "b = a", "c = b", ("d = c", ["step:t"]), "e = d"])
    assert steps(layout) == [("s", [0, 1, 2]), ("t", [3, 4])]


def test_consecutive_cells_with_the_same_step_tag_continue_it():
    layout = layout_of([("a = 1", ["step:s", "retries:2"]), ("b = a", ["step:s"]), ("c = b", ["step:s"])])
    assert steps(layout) == [("s", [0, 1, 2])]
    assert layout.steps[0].options == {"retries": 2}
    assert not layout.diagnostics


def test_same_step_name_after_another_step_is_a_duplicate():
    p = compile_source([("a = 1", ["step:s"]), ("b = a", ["step:t"]), ("c = b", ["step:s"])])
    [diag] = [d for d in p.diagnostics if d.code == "duplicate-step"]
    assert (diag.cell, diag.severity) == (2, "error")
    assert diag.message == "step 's' is already defined in cell 1"  # the first cell, as JupyterLab numbers it
    assert len({s.name for s in p.steps}) == len(p.steps), "step names stay unique"


def test_skip_cells_are_excluded():
    layout = layout_of([("a = 1", ["step:s"]), ("import matplotlib\nplot(a)", ["skip"]), "b = a"])
    assert steps(layout) == [("s", [0, 2])]
    assert layout.skipped == [1]
    p = compile_source([("a = 1", ["step:s"]), ("plot(a)", ["skip"]), "b = a"])
    assert not p.diagnostics, "a skipped cell is not analysed"


def test_leading_skip_cell_makes_no_step():
    layout = layout_of([("df.describe()", ["skip"]), ("a = 1", ["step:s"])])
    assert steps(layout) == [("s", [1])]


def test_step_options_on_an_imports_cell_are_misplaced():
    for role in ["imports", "functions", "parameters", "skip"]:
        layout = layout_of([("x = 1", [role, "resources:cpu=2"]), ("y = 1", ["step:s"])])
        assert codes(layout.diagnostics) == ["misplaced-tag"], role
        assert layout.diagnostics[0].cell == 0
        assert layout.steps[0].options == {}


def test_step_tag_on_an_imports_cell_is_misplaced():
    layout = layout_of([("import os", ["imports", "step:load"])])
    assert codes(layout.diagnostics) == ["misplaced-tag"]
    assert layout.steps == []


def test_after_on_a_skip_cell_is_misplaced():
    layout = layout_of([("a = 1", ["step:s"]), ("b = 1", ["skip", "after:s"])])
    assert codes(layout.diagnostics) == ["misplaced-tag"]


def test_options_on_an_untagged_continuation_cell_apply_to_the_current_step():
    layout = layout_of([
        ("a = 1", ["step:s", "resources:cpu=2"]),
        ("b = a", ["resources:memory=4Gi", "cache:off"]),
        ("c = b", ["timeout:30m", "after:t"]),
        ("d = 1", ["step:t"]),
    ])
    s = layout.steps[0]
    assert s.cells == [0, 1, 2]
    assert s.options == {"resources": {"cpu": 2, "memory": "4Gi"}, "cache": False, "timeout": 1800}
    assert s.after == ["t"] and s.after_cells == {"t": 2}
    assert layout.steps[1].options == {}


def test_an_option_given_two_values_in_one_step_warns_at_the_second_and_the_last_applies():
    layout = layout_of([
        ("a = 1", ["step:s", "resources:cpu=1", "timeout:90s", "image:python:3.11"]),
        ("b = a", ["resources:cpu=8;memory=4Gi", "limit:memory:2Gi", "timeout:1m30s", "image:python:3.12"]),
        ("c = b", ["step:t", "retries:1", "cache:off"]),
        ("d = c", ["retries:2", "cache:on"]),
    ])
    warned = [(d.code, d.cell, d.message) for d in layout.diagnostics]
    assert warned == [
        ("conflicting-option", 1, "'resources:cpu=8' contradicts 'resources:cpu=1' on cell 1 for step 's': "
                                  "'resources:cpu=8', the last given, applies"),
        ("conflicting-option", 1, "'limit:memory:2Gi' contradicts 'resources:memory=4Gi' on this cell for step 's': "
                                  "'limit:memory:2Gi', the last given, applies"),
        ("conflicting-option", 1, "'image:python:3.12' contradicts 'image:python:3.11' on cell 1 for step 's': "
                                  "'image:python:3.12', the last given, applies"),
        ("conflicting-option", 3, "'retries:2' contradicts 'retries:1' on cell 3 for step 't': "
                                  "'retries:2', the last given, applies"),
        ("conflicting-option", 3, "'cache:on' contradicts 'cache:off' on cell 3 for step 't': "
                                  "'cache:on', the last given, applies"),
    ]
    assert all(d.severity == "warning" and d.hint for d in layout.diagnostics)
    assert layout.steps[0].options == {"resources": {"cpu": 8, "memory": "2Gi"}, "timeout": 90,
                                       "image": "python:3.12"}
    assert layout.steps[1].options == {"retries": 2, "cache": True}


def test_an_option_given_the_same_value_twice_is_no_conflict():
    layout = layout_of([
        ("a = 1", ["step:s", "resources:cpu=1,cpu=1000m", "resources:memory=4Gi", "timeout:90"]),
        ("b = a", ["resources:memory=4096Mi", "limit:cpu:1", "timeout:1m30s", "cache:off", "cache:false"]),
        ("c = b", ["step:t", "resources:cpu=8"]),  # another step: its own options
        ("d = c", ["resources:cpu=x", "resources:cpu=8"]),  # a malformed value is an error, not a conflict
    ])
    assert codes(layout.diagnostics) == ["bad-tag-value"]


def test_options_before_the_first_step_tag_go_to_the_notebook_step():
    p = compile_source([("a = 1", ["retries:3"]), ("b = a", ["step:s"])], name="demo")
    assert p.step("demo").retries == 3
    assert p.step("s").retries == 0


def test_repeated_after_targets_are_kept_once():
    layout = layout_of([("a = 1", ["step:x"]), ("b = 1", ["step:y", "after:x"]), ("c = 1", ["after:x,x"])])
    assert layout.steps[1].after == ["x"]


def test_leading_blank_cells_make_no_step():
    layout = layout_of(["", "   \n\t", ("a = 1", ["step:s"])])
    assert steps(layout) == [("s", [2])]
    p = compile_source(["", "\n", ("a = 1", ["step:s"])])
    assert [s.name for s in p.steps] == ["s"]
    assert not p.diagnostics


def test_blank_cells_inside_a_step_stay_in_it():
    layout = layout_of([("a = 1", ["step:s"]), "", "b = a"])
    assert steps(layout) == [("s", [0, 1, 2])]


def test_a_notebook_of_only_blank_cells_has_no_steps():
    p = compile_source(["", " "])
    assert p.steps == [] and not p.has_errors


def test_markdown_between_cells_does_not_break_a_step(make_notebook, tmp_path):
    path = make_notebook(tmp_path, [
        ("a = 1", ["step:s"]),
        nbformat.v4.new_markdown_cell("## notes"),
        "b = a",
        nbformat.v4.new_markdown_cell("## next"),
        ("c = b", ["step:t"]),
    ])
    p = compile_notebook(path)
    assert [(s.name, s.cells) for s in p.steps] == [("s", [0, 2]), ("t", [4])]


def test_nbscale_tags_on_a_markdown_or_raw_cell_are_said_not_to_apply(make_notebook, tmp_path):
    """A heading cell tagged step:train: its code went into the step before, with no word."""
    heading = nbformat.v4.new_markdown_cell("## Training")
    heading.metadata["tags"] = ["step:train", "resources:gpu=1", "hide-input"]
    raw = nbformat.v4.new_raw_cell("x")
    raw.metadata["tags"] = ["parameters"]
    plain = nbformat.v4.new_markdown_cell("## Notes")
    plain.metadata["tags"] = ["hide-input", "my-own-tag"]  # other tools' tags on text are theirs
    path = make_notebook(tmp_path, [("a = 1", ["step:load"]), heading, "b = a", raw, plain])
    p = compile_notebook(path)
    assert [(d.code, d.severity, d.cell) for d in p.diagnostics] == [("tags-on-text-cell", "warning", 1),
                                                                      ("tags-on-text-cell", "warning", 3)]
    assert "'step:train', 'resources:gpu=1' are not applied" in p.diagnostics[0].message
    assert p.diagnostics[1].message.startswith("the raw cell's tags 'parameters'")


def test_tag_problems_from_every_cell_are_collected():
    layout = layout_of([("a = 1", ["stpe:s"]), ("b = 1", ["retries:x"])])
    assert [(d.code, d.cell) for d in layout.diagnostics] == [("unknown-tag", 0), ("bad-tag-value", 1)]


def test_kale_blocks_continue_over_cells(examples_dir):
    p = compile_notebook(examples_dir / "kale_style.ipynb")
    assert not p.has_errors
    assert any(len(s.cells) > 1 for s in p.steps)
