"""The layering holds: no import cycle anywhere in the package (imports inside functions
included), and no module over 300 lines."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "src" / "echodepth"
MAX_LINES = 300


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Returns the package modules a file imports, at module level or inside functions."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import sub` imports the submodule pkg.sub where there is one
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in modules and t != name}
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: imports_of(path, set(files)) for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert "echodepth.synth.analysis" in graph["echodepth.cli.commands"]  # imported inside cmd_synth
    assert "echodepth.training.datamodule" in graph["echodepth.training"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_evaluation_depends_on_training_never_the_reverse():
    graph = import_graph()
    assert "echodepth.training" in graph["echodepth.evaluate"]
    for name, deps in graph.items():
        if name.startswith("echodepth.training"):
            assert not {"echodepth.evaluate", "echodepth.runs.train", "echodepth.compare"} & deps, name


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_over_300_lines(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES


def test_the_package_root_holds_only_what_every_layer_shares():
    # settings, runs, inference and audio are packages: the root keeps the shared few
    loose = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__", "errors", "evaluate", "losses", "registry", "units", "version"]


def test_synth_never_imports_data():
    # data builds the built-in dataset with synth; the reverse would make the two one tangle
    graph = import_graph()
    synth = {name: deps for name, deps in graph.items() if name.startswith("echodepth.synth")}
    assert "echodepth.data.cache_files" in graph and synth
    for name, deps in synth.items():
        assert not [d for d in deps if d.startswith("echodepth.data")], name
    assert any(d.startswith("echodepth.synth") for d in graph["echodepth.data.cache_files"])
