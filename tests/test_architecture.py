"""The house's layout holds: imports run one way down the pipeline (docs/architecture.md).

Reads every module of monitoring/ as text (ast, nothing imported) and collects every import,
including those inside functions and under `if TYPE_CHECKING:`: a lazy import still ties two
modules together. Pure: no database.
"""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "monitoring"

# What each layer may import from monitoring/ (prefixes of dotted module names), beside itself.
# A layer not named here (web, replay, monitors, the top-level wiring) may import anything below it.
ALLOWED = {
    "monitoring.models": (),
    "monitoring.store": ("monitoring.store", "monitoring.semantics.semconv", "monitoring.models"),
    "monitoring.semantics": ("monitoring.semantics", "monitoring.store", "monitoring.models"),
    "monitoring.queries": ("monitoring.queries", "monitoring.semantics", "monitoring.store", "monitoring.models"),
    "monitoring.ingest": (
        "monitoring.ingest",
        "monitoring.store",
        "monitoring.models",
        "monitoring.access",
        "monitoring.prometheus",
    ),
}
# The read side never climbs back into the settler: what both need lives in semantics.scoping.
SETTLER = ("monitoring.semantics.settle", "monitoring.semantics.resettle")
# Who may import the web layer: itself, the URL map, template tags and the apps that serve pages.
WEB = "monitoring.web"
WEB_USERS = (
    "monitoring.web",
    "monitoring.urls",
    "monitoring.templatetags",
    "monitoring.monitors",
    "monitoring.quality",
)


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The monitoring modules `name` imports, anywhere in its file."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*parent, base] if base else parent)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target.startswith("monitoring") and target != name and target != "monitoring":
                found.add(target)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each a list of names."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_it_finds_the_imports_it_checks(graph):
    """The reader itself: a lazy import and a package import are both seen."""
    assert "monitoring.semantics.scoping" in graph["monitoring.semantics.settle"]
    assert "monitoring.store.clickhouse" in graph["monitoring.semantics.facts"]  # imported inside a function
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_it_has_no_import_circles(graph):
    assert _cycles(graph) == []


def test_the_read_side_never_imports_the_settler(graph):
    offenders = {
        (name, dep)
        for name, deps in graph.items()
        if _within(name, "monitoring.queries")
        for dep in deps
        if any(_within(dep, s) for s in SETTLER)
    }
    assert offenders == set()


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_each_layer_imports_only_what_lies_below_it(graph, layer):
    allowed = (layer, *ALLOWED[layer])
    offenders = {
        (name, dep)
        for name, deps in graph.items()
        if _within(name, layer)
        for dep in deps
        if not any(_within(dep, prefix) for prefix in allowed)
    }
    assert offenders == set()


def test_nothing_below_the_web_layer_imports_it(graph):
    offenders = {
        (name, dep)
        for name, deps in graph.items()
        for dep in deps
        if _within(dep, WEB) and not any(_within(name, user) for user in WEB_USERS)
    }
    assert offenders == set()


def test_at_most_a_dozen_modules_at_the_top():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 12, top


def test_the_architecture_page_names_every_package():
    page = (REPO / "docs" / "architecture.md").read_text()
    packages = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))
    missing = [name for name in packages if f"`{name}/`" not in page]
    assert missing == []
