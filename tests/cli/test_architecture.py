"""The layering of docs/architecture.md, checked on the code: imports only go down the layers, no
module imports another module's private name, and the document names every module."""

from __future__ import annotations

import ast
import re

import pytest
from conftest import ROOT

LAYERS = {"compiler": 1, "kernels": 2, "jupyter_ext": 3}  # a layer may import lower numbers only
FOLDERS = ["compiler", "kernels", "jupyter_ext", "nbscale"]
PACKAGE_OF = {"compiler": "nbscale.compiler", "kernels": "nbscale.kernels", "jupyter_ext": "nbscale.jupyter_ext",
              "nbscale": "nbscale"}


def modules():
    return sorted(p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py") if "node_modules" not in p.parts)


def module_name(path) -> str:
    rel = path.relative_to(ROOT)
    parts = [PACKAGE_OF[rel.parts[0]], *rel.parts[1:-1]]
    return ".".join(parts + ([] if rel.stem == "__init__" else [rel.stem]))


def imports(path):
    """(imported module, names) of every import in the file, relative imports made absolute."""
    name = module_name(path)
    package = name if path.stem == "__init__" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            yield base, [a.name for a in node.names]


def layer(module: str) -> int | None:
    for folder, number in LAYERS.items():
        if module == PACKAGE_OF[folder] or module.startswith(PACKAGE_OF[folder] + "."):
            return number
    return None


LAYERED = [p for p in modules() if layer(module_name(p))]


@pytest.mark.parametrize("path", LAYERED, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_only_go_down_the_layers(path):
    own = layer(module_name(path))
    for imported, _ in imports(path):
        other = layer(imported)
        assert other is None or other <= own, f"{module_name(path)} imports {imported}"
        if imported.startswith("nbscale.") and other is None:  # nbscale/ itself: only the stdlib-only base
            assert imported in ("nbscale.errors", "nbscale.registry"), f"{module_name(path)} imports {imported}"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_name_of_another_module_is_imported(path):
    for imported, names in imports(path):
        if imported.startswith("nbscale"):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            assert not private, f"{module_name(path)} imports {private} from {imported}"


def test_the_architecture_page_names_every_module():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:compiler|kernels|jupyter_ext|nbscale)/[\w/]+\.py)`", text))
    globbed = set(re.findall(r"`((?:compiler|kernels|jupyter_ext|nbscale)/[\w/]+)/\*\.py`", text))
    files = {str(p.relative_to(ROOT)) for p in modules() if p.stem not in ("__main__",)}
    files = {f for f in files if not (f.endswith("__init__.py") and f not in named)}
    unnamed = sorted(f for f in files if f not in named and not any(f.startswith(g + "/") for g in globbed))
    assert not unnamed, f"docs/architecture.md does not say who owns {unnamed}"
    assert not sorted(named - {str(p.relative_to(ROOT)) for p in modules()}), "it names modules that do not exist"
