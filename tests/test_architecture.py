"""docs/architecture.md is true to the code: every module its table names exists (with about the
line count it gives), every module of the package is in the table, and every contract owner it
names is an importable module."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "workflow" / "qdphonon"
DOC = (REPO / "docs" / "architecture.md").read_text()

ROW = re.compile(r"^\| `([\w/]+\.py)` \| (\d+) \|", re.MULTILINE)
OWNER = re.compile(r"^### 2\.\d+ .*?`(qdphonon(?:\.\w+)*)`", re.MULTILINE)


def table() -> dict[str, int]:
    return {path: int(n) for path, n in ROW.findall(DOC)}


def test_every_module_in_the_table_exists_with_about_its_line_count():
    rows = table()
    assert len(rows) > 40
    wrong = []
    for path, lines in rows.items():
        f = PACKAGE / path
        if not f.is_file():
            wrong.append(f"{path}: no such module")
            continue
        actual = len(f.read_text().splitlines())
        if abs(actual - lines) > max(25, 0.15 * actual):
            wrong.append(f"{path}: table says {lines} lines, the module has {actual}")
    assert not wrong, "docs/architecture.md §1 is stale:\n" + "\n".join(wrong)


def test_every_module_of_the_package_is_in_the_table():
    modules = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    missing = sorted(modules - set(table()))
    assert not missing, f"modules missing from docs/architecture.md §1: {missing}"


def test_no_module_exceeds_about_400_lines():
    big = {p.relative_to(PACKAGE).as_posix(): n for p in PACKAGE.rglob("*.py")
           if (n := len(p.read_text().splitlines())) > 420}  # fmt: skip
    assert not big


def test_every_contract_owner_is_a_module():
    owners = OWNER.findall(DOC)
    assert len(owners) >= 3
    missing = [name for name in owners if importlib.util.find_spec(name) is None]
    assert not missing, f"contract owners named in docs/architecture.md §2 that do not exist: {missing}"


def _module_level_imports() -> dict[str, set[str]]:
    """qdphonon module -> the qdphonon modules it imports at module level (not in functions or TYPE_CHECKING)."""
    import ast

    def name(path: Path) -> str:
        return ".".join(("qdphonon", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")

    known = {name(p) for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        src = name(path)
        out = graph.setdefault(src, set())
        for node in ast.parse(path.read_text()).body:
            for sub in [node] if isinstance(node, (ast.Import, ast.ImportFrom)) else []:
                if isinstance(sub, ast.ImportFrom) and (sub.module or "").startswith("qdphonon"):
                    for alias in sub.names:
                        full = f"{sub.module}.{alias.name}"
                        out.add(full if full in known else sub.module)
                elif isinstance(sub, ast.Import):
                    out.update(a.name for a in sub.names if a.name.startswith("qdphonon"))
        out.discard(src)
    return graph


def test_no_module_level_import_cycle_and_the_run_directory_imports_no_engine():
    graph = _module_level_imports()
    engines = sorted(f"{a} -> {b}" for a, bs in graph.items() if a.startswith("qdphonon.run")
                     for b in bs if b.startswith("qdphonon.engines"))  # fmt: skip
    assert not engines
    _assert_acyclic(graph, "import cycle")


def _assert_acyclic(graph: dict[str, set[str]], what: str) -> None:
    """AssertionError naming the first cycle of ``graph`` (depth first, sorted)."""
    state: dict[str, int] = {}

    def visit(v: str, stack: list[str]) -> None:
        state[v] = 1
        for w in sorted(graph.get(v, ())):
            if state.get(w) == 1:
                raise AssertionError(f"{what}: " + " -> ".join(stack[stack.index(w):] + [w]) if w in stack else w)
            if w not in state:
                visit(w, [*stack, w])
        state[v] = 2

    for v in sorted(graph):
        if v not in state:
            visit(v, [v])


def _part(module: str) -> str:
    """qdphonon.run.layout -> run; qdphonon.cost -> cost (a subpackage or a top-level module)."""
    bits = module.split(".")
    return bits[1] if len(bits) > 1 else "qdphonon"


def test_no_module_level_cycle_between_parts_and_run_imports_only_itself():
    """The subpackages (and top-level modules) form no cycle: the run-directory contract (run/) is below the
    parsers, the metadata and the engines, and imports nothing of theirs."""
    graph: dict[str, set[str]] = {}
    for src, targets in _module_level_imports().items():
        graph.setdefault(_part(src), set()).update(_part(t) for t in targets if _part(t) != _part(src))
    assert graph["run"] <= {"typed_records"}, graph["run"]
    _assert_acyclic(graph, "cycle between parts")


CP2K_OUTPUT_MARKERS = ("EIGENVALUES AND OCCUPATION", "E(Fermi)", "Band gap", "HOMO - LUMO", "PROGRAM ENDED",
                       "PROGRAM STARTED", "CP2K|", "GLOBAL|", "MD_INI|", "MD| ", "SCF run", "ENERGY| Total",
                       "OPTIMIZATION COMPLETED", "STEP_START_VAL", "Step Nr.", "i =", "ABORT")  # fmt: skip
"""Text CP2K prints into its outputs, trajectories, MOLogs and restart files."""

CP2K_TEXT_WRITERS = {"engines/mock_writers.py", "engines/mock_localisation.py", "engines/mock_dcd.py",
                     "harmonic/mock.py", "reevaluate.py"}  # fmt: skip
"""Modules that write CP2K-shaped text and read none: the mock's outputs, and the re-evaluation's
snapshot file (CP2K XYZ, the input of ``REFTRAJ``)."""


def _string_constants(tree) -> list[tuple[int, str]]:
    """(line, text) of every str/bytes constant of a module but its docstrings."""
    import ast

    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.body
                  and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}  # fmt: skip
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Constant) and isinstance(n.value, (str, bytes)) and id(n) not in docstrings:
            text = n.value.decode("latin-1") if isinstance(n.value, bytes) else n.value
            out.append((n.lineno, text))
    return out


def test_cp2k_output_text_is_read_only_in_parsers():
    """A new CP2K print variant is a parsers/-only change: no module outside parsers/ (but the mock's
    writers) holds a string or regex of CP2K's output text. Error messages may name a CP2K file, not its
    contents."""
    import ast

    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("parsers/") or rel in CP2K_TEXT_WRITERS:
            continue
        for line, text in _string_constants(ast.parse(path.read_text())):
            hits = [m for m in CP2K_OUTPUT_MARKERS if m in text]
            if hits:
                found.append(f"{rel}:{line}: {hits} in {text[:60]!r}")
    assert not found, "CP2K output text outside parsers/:\n" + "\n".join(found)


def test_the_cp2k_text_check_sees_a_reader_outside_parsers(tmp_path):
    """The check above finds a MOLog marker in a regex (not only in plain strings) and skips docstrings."""
    import ast

    src = '"""Reads E(Fermi) lines."""\nimport re\nPAT = re.compile(rb"EIGENVALUES AND OCCUPATION")\n'
    texts = [t for _, t in _string_constants(ast.parse(src))]
    assert texts == ["EIGENVALUES AND OCCUPATION"]


def test_every_archive_extraction_runs_on_every_allowed_python():
    """``pyproject.toml`` allows Python 3.11.0, whose ``tarfile.extractall`` has no ``filter``: every
    extraction in tests/ and validation/ goes through ``tests/archives.extract`` or guards the filter."""
    scripts = [*REPO.glob("tests/**/*.py"), *REPO.glob("validation/**/*.py"), *PACKAGE.rglob("*.py")]
    bad = []
    for path in scripts:
        if path.name == "archives.py":
            continue
        for no, line in enumerate(path.read_text().splitlines(), 1):
            if ".extractall(" in line and "filter=" in line and 'hasattr(tarfile, "data_filter")' not in line:
                bad.append(f"{path.relative_to(REPO)}:{no}")
    assert not bad, bad
    assert (REPO / "pyproject.toml").read_text().count('requires-python = ">=3.11"') == 1
