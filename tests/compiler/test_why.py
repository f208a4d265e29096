"""`why`: the reasons behind each edge, as `nbscale graph --why UP DOWN` prints them."""

import pytest

from nbscale.compiler.notebook import Cell, Notebook
from nbscale.compiler.why import UnknownStep, why

ISSUE = [
    ("from sklearn.datasets import make_classification\nfrom sklearn.linear_model import LogisticRegression",
     ["imports"]),
    ("X, y = make_classification(50, random_state=0)", ["step:data"]),
    ("m1 = LogisticRegression()\nm1.fit(X, y)", ["step:a"]),
    ("total = X.sum()", ["step:d"]),
    ("m1.data_ = X\nm1.data_[0] = 5", ["step:b"]),
    ("n = len(X)", ["step:c", "after:a"]),
]


def notebook(cells):
    return Notebook(path="nb.ipynb", cells=tuple(Cell(index=i, cell_type="code", source=source, tags=tuple(tags))
                                                 for i, (source, tags) in enumerate(cells)))


def test_an_edge_names_the_cell_line_and_code_that_binds_or_changes_the_name():
    nb = notebook(ISSUE)
    assert why(nb, "data", "a") == [
        "a reads X, which data binds at cell 2, line 1 (X, y = make_classification(50, random_state=0))",
        "a reads y, which data binds at cell 2, line 1 (X, y = make_classification(50, random_state=0))"]
    # b changes X through m1, which holds it: a hands X on with m1, so they stay one object
    assert why(nb, "b", "c") == ["c reads X, which b may change at cell 5, line 2 (m1.data_[0] = 5)"]
    assert "b reads m1, which a binds at cell 3, line 1 (m1 = LogisticRegression())" in why(nb, "a", "b")
    assert ("b reads X, which a hands on together with m1, so that they stay the same objects for a step that "
            "may change them") in why(nb, "a", "b")


def test_after_tags_indirect_and_missing_edges_are_explained():
    nb = notebook(ISSUE)
    assert "c is tagged after:a" in why(nb, "a", "c")
    assert why(nb, "data", "b") == ["b does not depend on data directly; it comes after it through data -> a -> b"]
    # fitting m1 does not change X: d is parallel to a and b
    assert why(nb, "a", "d") == ["d does not depend on a: they may run in parallel"]
    assert why(nb, "c", "a") == ["a does not depend on c: c comes after a"]
    with pytest.raises(UnknownStep, match="steps: data, a, d, b, c"):
        why(nb, "data", "nope")


def test_why_reads_a_notebook_file(make_notebook, tmp_path):
    path = make_notebook(tmp_path, [("x = [1]", ["step:one"]), ("x.append(2)", ["step:two"]),
                                    ("y = len(x)", ["step:three"])])
    assert why(path, "two", "three") == ["three reads x, which two may change at cell 2, line 1 (x.append(2))"]
