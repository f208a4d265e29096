"""Precision and recall of the edges the compiler draws, on the precision suite's idioms.

Run on demand (not part of the tests):

    python bench/bench_precision.py             # measure, print, update docs/benchmarks.md
    python bench/bench_precision.py --no-doc    # only print
    python bench/bench_precision.py --against REV   # compare with the compiler at another revision

The idioms (tests/compiler/precision_idioms.py) come from tutorials: scikit-learn estimators,
pipelines, GridSearchCV, cross_val_score, pandas fit_transform and df.pipe, matplotlib figures,
torch-style training loops, lists and dicts of models and frames. Each has the edges a careful
reader draws. An edge is an (upstream step, downstream step) pair; precision is the share of
the compiler's edges that the reader's graph implies, recall the share of the reader's edges the
compiler's graph implies — an edge is implied when the graph orders the two steps that way,
directly or through other steps (data routed through a step in between still arrives).
tests/compiler/test_dataflow.py checks both on every idiom (exact edges, and a pipeline run
equal to the top-to-bottom run); this script reports the numbers, also for the compiler at
another git revision (`--against`, default BEFORE: the compiler before "may hold is not may be")
to show what a change of the analysis did.
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import tempfile
from pathlib import Path

from common import DOC, ROOT, machine, revision
from doc_sections import produced_by, publish, table

from nbscale.compiler.graph import ancestors

sys.path.insert(0, str(ROOT / "tests" / "compiler"))
from precision_idioms import IDIOMS  # noqa: E402

START, END = "<!-- bench_precision:start -->", "<!-- bench_precision:end -->"
BEFORE = "e0bc787"  # the last compiler before issue 12's alias model (one alias group per shared object)
TARGET_RECALL, TARGET_PRECISION = 1.0, 0.95


def edges_of(compile_source, idiom) -> set[tuple[str, str]]:
    pipeline = compile_source(idiom.cells(), name=idiom.name)
    return {(up, step.name) for step in pipeline.steps for up in step.after}


def implied(edges: set[tuple[str, str]], by: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The edges of `edges` that the graph `by` orders the same way (directly or not)."""
    upstream: dict[str, list[str]] = {}
    for up, down in by:
        upstream.setdefault(down, []).append(up)
    return {(up, down) for up, down in edges if up in ancestors(down, upstream)}


def score(compile_source) -> dict:
    """Edge counts over all idioms, and the idioms whose edges differ from the reader's."""
    reader = compiler = right = found = 0
    differing = []
    for idiom in IDIOMS:
        want, got = set(idiom.edges()), edges_of(compile_source, idiom)
        reader, compiler = reader + len(want), compiler + len(got)
        right += len(implied(got, want))
        found += len(implied(want, got))
        if want != got:
            differing.append((idiom.name, sorted(got - implied(got, want)), sorted(want - implied(want, got)),
                              sorted((got - want) & implied(got, want))))
    return {"reader": reader, "compiler": compiler, "fp": compiler - right, "fn": reader - found,
            "differing": differing, "precision": right / compiler if compiler else 1.0,
            "recall": found / reader if reader else 1.0}


def compiler_at(rev: str, folder: Path):
    """`compile_source` of the compiler package as it was at git revision `rev` (read-only git),
    under a stand-in parent package holding the stdlib-only modules it imports (errors, registry)."""
    parent = folder / "nbscale_at_rev"

    def copy(name, target):
        text = subprocess.run(["git", "show", f"{rev}:{name}"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")

    files = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev, "compiler/"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        copy(name, parent / name)
    for name in ("nbscale/errors.py", "nbscale/registry.py"):
        copy(name, parent / Path(name).name)
    (parent / "__init__.py").write_text("", encoding="utf-8")
    sys.path.insert(0, str(folder))
    return importlib.import_module("nbscale_at_rev.compiler").compile_source


def render(result) -> str:
    now, then = result["now"], result.get("then")

    def pct(v):
        return f"{v * 100:.1f} %"

    def edges(pairs):
        return ", ".join(f"{u} → {d}" for u, d in pairs) or "—"

    rows = [[label, str(s["reader"]), str(s["compiler"]), str(s["fp"]), str(s["fn"]), pct(s["precision"]),
             pct(s["recall"])] for label, s in (("this tree", now), (f"compiler at `{result['against']}`", then)) if s]
    verdict = "met" if now["recall"] >= TARGET_RECALL and now["precision"] >= TARGET_PRECISION else "**missed**"
    lines = [
        START,
        "## Dataflow precision (`bench/bench_precision.py`)",
        "",
        produced_by(result["command"], revision("compiler", what="compiler"), result["machine"]),
        "",
        f"{len(IDIOMS)} idioms from tutorials (tests/compiler/precision_idioms.py: scikit-learn estimators, "
        "pipelines, GridSearchCV, cross_val_score, fit_transform, df.pipe, matplotlib figures, torch-style "
        "training loops with a pure-Python stand-in for torch, lists and dicts of models and frames), each with "
        "the edges a careful reader draws. An edge is an (upstream, downstream) step pair. "
        "tests/compiler/test_dataflow.py also runs every idiom's pipeline against its top-to-bottom run.",
        "",
        *table(["compiler", "reader's edges", "compiler's edges", "false edges", "missed edges", "precision",
                "recall"], rows),
        "",
        f"Target: recall 100 %, precision ≥ {TARGET_PRECISION * 100:.0f} % — {verdict}.",
    ]
    for label, scored in (("this tree", now), (f"`{result.get('against')}`", then)):
        if scored and scored["differing"]:
            lines += ["", f"Idioms where the compiler ({label}) draws other edges than the reader:", "",
                      *table(["idiom", "false edges", "missed edges", "edges routed otherwise"],
                             [[name, edges(fp), edges(fn), edges(other)]
                              for name, fp, fn, other in scored["differing"] if fp or fn or other])]
    lines.append(END)
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default=BEFORE,
                        help="also score the compiler at this git revision ('' = no)")
    parser.add_argument("--no-doc", action="store_true", help=f"do not update {DOC.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    from nbscale.compiler import compile_source

    result = {"now": score(compile_source), "against": args.against, "machine": machine(),
              "command": " ".join(["python bench/bench_precision.py", *(argv if argv is not None else sys.argv[1:])])}
    if args.against:
        with tempfile.TemporaryDirectory(prefix="nbscale-bench-") as tmp:
            result["then"] = score(compiler_at(args.against, Path(tmp)))
    section = render(result)
    publish(section, DOC, START, END, write=not args.no_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
