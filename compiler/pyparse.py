"""`ast.parse`, safe from CPython's spurious "AST constructor recursion depth mismatch".

CPython 3.11 and 3.12 keep the depth count of the code that turns a parse into `ast` nodes in the
interpreter, not in the call: a parse that runs meanwhile at another depth — in a finalizer the
cycle collector calls as the nodes are made (an exception reported from a `__del__`: pytest's,
asyncio's and IPython's reporting format its traceback, which 3.11 does with `ast.parse`), or in
another thread — leaves it wrong, and the first parse raises SystemError for text that parses.
(CPython gh-106905.) Such a parse is made again.
"""

from __future__ import annotations

import ast

_TRIES = 4
_SPURIOUS = "AST constructor recursion depth mismatch"


def parse_text(text, mode: str = "exec", filename: str = "<unknown>") -> ast.AST:
    """`ast.parse(text, filename, mode)`; raises SyntaxError as it does."""
    for _ in range(_TRIES - 1):
        try:
            return ast.parse(text, filename, mode)
        except SystemError as exc:
            if _SPURIOUS not in str(exc):
                raise
    return ast.parse(text, filename, mode)
