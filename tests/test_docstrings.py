"""Every public function, class and method (`forward` included) of the documented modules has a
docstring. Public: a name without a leading underscore, at module level or in a class body (nested
functions are an implementation detail). The scope is `DOCUMENTED`: the whole package."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "src" / "echodepth"

# folders (every module under them) and single modules, relative to src/echodepth: the whole package
DOCUMENTED = (".",)


def documented_files() -> list[Path]:
    files = set()
    for entry in DOCUMENTED:
        path = PACKAGE / entry
        files |= set(path.rglob("*.py")) if path.is_dir() else {path}
    return sorted(files)


def undocumented(path: Path) -> list[str]:
    """Returns 'line: name' for each public function, class or method of a file without a docstring."""
    missing = []

    def visit(body, prefix=""):
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if not node.name.startswith("_") and ast.get_docstring(node) is None:
                    missing.append(f"{node.lineno}: {prefix}{node.name}")
                if isinstance(node, ast.ClassDef):
                    visit(node.body, f"{prefix}{node.name}.")

    visit(ast.parse(path.read_text()).body)
    return missing


@pytest.mark.parametrize("path", documented_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_public_function_class_and_method_has_a_docstring(path):
    assert undocumented(path) == []


def test_the_scope_names_existing_modules_and_the_check_sees_a_missing_docstring(tmp_path):
    assert all((PACKAGE / entry).exists() for entry in DOCUMENTED)
    source = tmp_path / "sample.py"
    source.write_text(
        "def public():\n"
        "    def nested():\n"
        "        pass\n"
        "def _private():\n"
        "    pass\n"
        "class Net:\n"
        '    """A network."""\n'
        "    def forward(self, x):\n"
        "        return x\n"
        "    def _helper(self):\n"
        "        pass\n"
        "    class Settings:\n"
        "        def check(self):\n"
        '            """Checks."""\n'
    )
    assert undocumented(source) == ["1: public", "8: Net.forward", "12: Net.Settings"]
