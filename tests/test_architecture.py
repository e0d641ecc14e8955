# SPDX-License-Identifier: GPL-3.0-or-later
"""The floors of the package, checked statically (``ast`` over every ``.py`` of the repository,
nothing imported): no import cycle between modules, the core never imports the package's entry file
``__init__.py``, and the pure floors never import ``bpy``. Also: one version, which the manifest
repeats; a document's keys are spelled only in its owner module; files and functions stay small."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "dataset_forge"
EXCLUDED_TOP = ("tests", "tools", "bench", "docs")
# Floors that are plain Python: unit-testable without Blender.
PURE = ("settings.py", "text.py", "sampling/", "wire/", "engine/", "dataset/")
# The core: it must not import the add-on's entry file (which Blender loads for register()).
CORE = (*PURE, "render_passes/")


def _package_files() -> dict[str, Path]:
    """Module name (``dataset_forge.engine.plan``) -> file, for every .py of the package."""
    out = {}
    paths = []
    for top in REPO.iterdir():
        if top.name.startswith(".") or top.name in EXCLUDED_TOP:  # .venv*, .git, ...
            continue
        if top.is_dir():
            if (top / "__init__.py").exists():  # a subpackage; other folders (datasets/) are not walked
                paths += top.rglob("*.py")
        elif top.suffix == ".py":
            paths.append(top)
    for path in sorted(paths):
        rel = path.relative_to(REPO)
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join([PACKAGE, *parts])] = path
    return out


MODULES = _package_files()


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """Absolute module name of ``from <level dots><name> import ...`` written in ``module``."""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


@functools.cache
def _source(module: str) -> tuple[str, ast.Module]:
    """The text of ``module`` and its syntax tree, read and parsed once for every test here."""
    path = MODULES[module]
    src = path.read_text(encoding="utf-8")
    return src, ast.parse(src, filename=str(path))


@functools.cache
def _nodes(module: str) -> tuple[ast.AST, ...]:
    """Every node of ``module``'s tree in ``ast.walk`` order, walked once for every scan here."""
    return tuple(ast.walk(_source(module)[1]))


@functools.cache
def imports_of(module: str) -> tuple[tuple[str, int], ...]:
    """(imported module of the package or ``bpy``, line) for every import statement of
    ``module``, at module level or inside a function. ``from X import y`` counts as importing
    ``X.y`` when that is a module, else ``X``."""
    path = MODULES[module]
    is_package = path.name == "__init__.py"
    out = []
    for node in _nodes(module):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                src = _resolve(module, is_package, node.level, node.module)
            else:
                src = node.module or ""
            names = []
            for a in node.names:
                sub = f"{src}.{a.name}"
                names.append(sub if sub in MODULES else src)
        else:
            continue
        for n in names:
            if n == "bpy" or n.startswith("bpy."):
                out.append(("bpy", node.lineno))
            elif n == PACKAGE or n.startswith(PACKAGE + "."):
                # An import of a.b.c also runs a and a.b: keep the deepest module that exists.
                while n not in MODULES and "." in n:
                    n = n.rsplit(".", 1)[0]
                out.append((n, node.lineno))
    return tuple(out)


def _rel(module: str) -> str:
    return str(MODULES[module].relative_to(REPO))


def _in(module: str, floors: tuple[str, ...]) -> bool:
    rel = _rel(module)
    return any(rel == f or rel.startswith(f) for f in floors)


def test_the_walk_sees_the_whole_package():
    names = set(MODULES)
    for m in ("dataset_forge", "dataset_forge.settings", "dataset_forge.engine.plan",
              "dataset_forge.dataset.layout", "dataset_forge.render_passes.compat",
              "dataset_forge.panels.dataset", "dataset_forge.sampling"):
        assert m in names, m
    assert not any(".tests" in m or ".tools" in m or ".bench" in m for m in names)
    # The walk finds a known edge and a known bpy import (a walk that sees nothing passes nothing).
    assert any(n == "dataset_forge.settings" for n, _ in imports_of("dataset_forge.cli"))
    assert any(n == "bpy" for n, _ in imports_of("dataset_forge.properties"))


def _graph() -> dict[str, dict[str, int]]:
    """Module -> {imported package module: line of the first such import}, module-level imports
    and imports deferred into functions alike: a deferred import only hides a cycle from the
    interpreter, not from a reader."""
    graph: dict[str, dict[str, int]] = {}
    for m in MODULES:
        edges = graph.setdefault(m, {})
        for n, line in imports_of(m):
            if n not in ("bpy", m):
                edges.setdefault(n, line)
    return graph


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _describe(comp: list[str], graph: dict[str, dict[str, int]]) -> str:
    edges = [f"{_rel(a)}:{graph[a][b]} -> {_rel(b)}" for a in comp for b in comp if b in graph[a]]
    return "; ".join(edges)


def test_no_import_cycle_between_modules():
    """Neither at import time nor through imports deferred into functions. A package's
    ``__init__`` importing its children is an edge like any other, so a child importing its
    package back is reported too."""
    graph = _graph()
    cycles = [_describe(c, graph) for c in _cycles(graph)]
    assert cycles == [], "import cycles:\n" + "\n".join(cycles)


def test_core_never_imports_the_package_entry_file():
    """``__init__.py`` is the add-on's entry point (register, the public functions); the core gets
    the version from ``version.py`` and errors from ``errors.py``."""
    offenders = [f"{_rel(m)}:{line}" for m in MODULES if _in(m, CORE)
                 for n, line in imports_of(m) if n == PACKAGE]
    assert offenders == []


def test_pure_floors_never_import_bpy():
    offenders = [f"{_rel(m)}:{line}" for m in MODULES if _in(m, PURE)
                 for n, line in imports_of(m) if n == "bpy"]
    assert offenders == []
    # Nor do they import the floors that do (an indirect bpy import).
    bpy_floors = ("properties.py", "operators/", "panels/", "render_passes/")
    indirect = [f"{_rel(m)}:{line} -> {_rel(n)}" for m in MODULES if _in(m, PURE)
                for n, line in imports_of(m) if n in MODULES and _in(n, bpy_floors)]
    assert indirect == []


def test_worker_and_engine_stand_side_by_side():
    """The worker (``render_passes/``) and the engine (``engine/``) never import each other: what
    both need (the wire, the journal, provenance, the layout) lives on the floors below them."""
    pairs = (("render_passes/", "engine/"), ("engine/", "render_passes/"))
    offenders = [f"{_rel(m)}:{line} -> {_rel(n)}" for a, b in pairs for m in MODULES
                 if _in(m, (a,)) for n, line in imports_of(m) if n in MODULES and _in(n, (b,))]
    assert offenders == []
    # The wire imports nothing above the base floor (the settings' type, the errors).
    wire = [f"{_rel(m)}:{line} -> {_rel(n)}" for m in MODULES if _in(m, ("wire/",))
            for n, line in imports_of(m)
            if n in MODULES and not _in(n, ("wire/", "errors.py", "settings.py"))]
    assert wire == []


def test_manifest_version_is_the_package_version():
    from dataset_forge.version import __version__

    manifest = (REPO / "blender_manifest.toml").read_text(encoding="utf-8")
    versions = re.findall(r'^version\s*=\s*"([^"]+)"', manifest, flags=re.M)
    assert versions == [__version__]
    # The version is written once in Python: nowhere else assigns __version__.
    others = [_rel(m) for m in MODULES if m != "dataset_forge.version"
              and re.search(r"^__version__\s*=", MODULES[m].read_text(encoding="utf-8"), re.M)]
    assert others == []


def test_an_unmarked_test_cannot_start_bpy(request):
    """The guard of tests/conftest.py that keeps ``pytest -m "not render"`` free of bpy: this test
    has no ``render`` marker, so a bpy subprocess, an in-process ``import bpy`` and the bpy helpers
    are refused (and recorded, which would fail the test; the records are cleared here)."""
    import os
    import subprocess
    import sys

    import conftest
    import pytest

    proc = subprocess.run([sys.executable, "-c", "import bpy"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1
    assert "not marked @pytest.mark.render" in proc.stderr
    flag = Path(os.environ["DF_NO_BPY_FLAG"])
    assert flag.read_text(encoding="utf-8").startswith(sys.executable)
    flag.unlink()
    with pytest.raises(pytest.fail.Exception, match="is not marked @pytest.mark.render"):
        conftest.run_bpy("print('never')")
    with pytest.raises(pytest.fail.Exception, match="is not marked @pytest.mark.render"):
        conftest.bpy_env()
    if "bpy" not in sys.modules:  # a render test of this session may have imported it for real
        with pytest.raises(ImportError, match="not marked @pytest.mark.render"):
            import bpy  # noqa: F401
        assert "bpy" not in sys.modules
        conftest._current["bpy_in_process"].remove(request.node.nodeid)


def test_the_package_face_is_its_api():
    """``dir(dataset_forge)`` lists the public API (``__all__``) and nothing the module uses
    internally (no ``Any`` or ``annotations`` beside the functions)."""
    import dataset_forge

    assert dir(dataset_forge) == sorted(dataset_forge.__all__)
    assert all(callable(getattr(dataset_forge, n)) for n in dataset_forge.__all__
               if n != "__version__")


def _floor_table() -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """``{floor: (module prefixes, floors it may import)}`` from docs/architecture.md's table."""
    doc = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\w+) \| (`[^|]+`) \|\s*([\w, ]*?)\s*\|$", doc, flags=re.M)
    return {name: (tuple(re.findall(r"`([^`]+)`", mods)),
                   tuple(f.strip() for f in may.split(",") if f.strip()))
            for name, mods, may in rows}


def test_the_floor_picture_in_the_docs_is_the_import_graph():
    """Every module sits on exactly one floor of docs/architecture.md, and imports only its own
    floor or the floors its row lists (so the picture is drawn the way the arrows go)."""
    table = _floor_table()
    assert set(table) == {"faces", "engine", "worker", "data", "wire", "base"}

    def floor(m: str) -> str:
        found = [n for n, (mods, _) in table.items() if _in(m, mods)]
        assert len(found) == 1, f"{_rel(m)} is on floors {found} of docs/architecture.md"
        return found[0]

    wrong = []
    for m in MODULES:
        fm = floor(m)
        for n, line in imports_of(m):
            if n in MODULES and (fn := floor(n)) != fm and fn not in table[fm][1]:
                wrong.append(f"{_rel(m)}:{line} ({fm}) -> {_rel(n)} ({fn})")
    assert wrong == []


# -- documents: one owner per key ------------------------------------------------------------------
# Each document's owner module exports KEYS (every key it writes or reads) and GENERIC (those that
# are keys of other documents or events too, so they are not looked for elsewhere). The layout
# defines the per-frame file keys and the camera-cut keys of transforms.json (Kind.key,
# FLOW_*_VALID): it is their co-owner; settings.py (SettingsDict) co-owns the options a document
# records under the option's name.
DOCUMENT_OWNERS = {
    "dataset_forge.dataset.documents.manifest": (),
    "dataset_forge.dataset.documents.transforms": ("dataset_forge.dataset.layout",),
    "dataset_forge.dataset.documents.job": (),
    "dataset_forge.dataset.documents.info": (),
    "dataset_forge.dataset.documents.segmentation_ids": ("dataset_forge.settings",),  # the option
    # class_property, which the document records, is a key of SettingsDict too
    "dataset_forge.dataset.documents.plan": (),
}


@functools.cache
def _string_literals(module: str) -> tuple[tuple[str, int], ...]:
    """Every string constant of ``module`` that is a whole expression value (docstrings and
    f-string pieces are not keys), with its line."""
    nodes = _nodes(module)
    pieces = {id(v) for node in nodes if isinstance(node, ast.JoinedStr) for v in node.values}
    return tuple((node.value, node.lineno) for node in nodes
                 if isinstance(node, ast.Constant) and isinstance(node.value, str)
                 and id(node) not in pieces)


def test_document_keys_are_spelled_only_in_their_owner():
    """A key of manifest.json, transforms.json or the job file appears as a string literal only in
    its owner module (the others use the model or the owner's constants)."""
    import importlib

    offenders = []
    for owner, co in DOCUMENT_OWNERS.items():
        mod = importlib.import_module(owner)
        keys = set(mod.KEYS) - set(mod.GENERIC)
        assert keys, owner  # an owner that declares nothing checks nothing
        for m in MODULES:
            if m == owner or m in co:
                continue
            offenders += [f"{_rel(m)}:{line}: {s!r} (owned by {_rel(owner)})"
                          for s, line in _string_literals(m) if s in keys]
    assert offenders == [], "\n".join(offenders)


def test_the_key_scan_sees_a_key():
    """The scan finds a known key in its owner (a scan that sees nothing passes nothing)."""
    literals = {s for s, _ in _string_literals("dataset_forge.dataset.documents.transforms")}
    assert {"fl_x", "schema_version", "conventions"} <= literals
    assert "frames_complete" in {s for s, _ in _string_literals("dataset_forge.dataset.documents.manifest")}


# -- sizes -----------------------------------------------------------------------------------------
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 60
# Today's offenders, to be shrunk (not added to): file -> lines allowed, "file:function" -> lines.
FILE_ALLOW: dict[str, int] = {}
FUNCTION_ALLOW: dict[str, int] = {}


def _sizes() -> tuple[dict[str, int], dict[str, int]]:
    files, functions = {}, {}
    for m in MODULES:
        src = _source(m)[0]
        rel = _rel(m)
        files[rel] = len(src.splitlines())
        for node in _nodes(m):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                key = f"{rel}:{node.name}"
                functions[key] = max(functions.get(key, 0), node.end_lineno - node.lineno + 1)
    return files, functions


def test_package_files_and_functions_stay_small():
    """No package module over 500 lines, no function over 60 (decorators aside), except the listed
    ones, which may not grow."""
    files, functions = _sizes()
    big_files = [f"{f}: {n} lines" for f, n in files.items() if n > FILE_ALLOW.get(f, MAX_FILE_LINES)]
    big_functions = [f"{f}: {n} lines" for f, n in functions.items()
                     if n > FUNCTION_ALLOW.get(f, MAX_FUNCTION_LINES)]
    assert big_files == [], "files over the limit:\n" + "\n".join(big_files)
    assert big_functions == [], "functions over the limit:\n" + "\n".join(big_functions)
    assert max(files.values()) > 100 and max(functions.values()) > 20  # the walk measured something
