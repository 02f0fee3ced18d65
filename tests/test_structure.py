"""How the code is kept: the app uses only the library's public API, no function runs long, nothing
patches sys.path, and the README's library example runs as printed."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import vitrm
from vitrm import analysis

ROOT = Path(__file__).resolve().parents[1]
APP = sorted((ROOT / "app").rglob("*.py"))
LIBRARY = sorted((ROOT / "vitrm").rglob("*.py"))
MAX_FUNCTION_LINES = 80
PUBLIC_MODULES = {"analysis": analysis}      # modules exported by name, whose own __all__ is public too


def trees(files):
    return [(f, ast.parse(f.read_text(encoding="utf-8"))) for f in files]


def test_the_app_imports_only_names_the_library_exports():
    refused = []
    for file, tree in trees(APP):
        where = file.relative_to(ROOT)
        modules = {"vitrm": vitrm}          # names that stand for vitrm or one of its public modules
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "vitrm":
                if node.module != "vitrm":
                    refused.append(f"{where}:{node.lineno} imports from {node.module}")
                for alias in node.names:
                    if alias.name not in vitrm.__all__:
                        refused.append(f"{where}:{node.lineno} vitrm.{alias.name}")
                    if alias.name in PUBLIC_MODULES:
                        modules[alias.asname or alias.name] = PUBLIC_MODULES[alias.name]
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            if isinstance(node.value, ast.Name) and node.value.id in modules:
                module = modules[node.value.id]
            elif (isinstance(node.value, ast.Attribute) and isinstance(node.value.value, ast.Name)
                  and node.value.value.id == "vitrm" and node.value.attr in PUBLIC_MODULES):
                module = PUBLIC_MODULES[node.value.attr]
            else:
                continue
            if node.attr not in module.__all__:
                refused.append(f"{where}:{node.lineno} {module.__name__}.{node.attr}")
    assert not refused, "\n".join(refused)


def test_every_exported_name_exists():
    for module in (vitrm, analysis):
        assert all(hasattr(module, name) for name in module.__all__), module.__name__


def test_the_app_never_reads_model_internals():
    internals = ("head_norm", "halt_head", "type_embed", ".head.weight", "named_parameters")
    found = [f"{f.relative_to(ROOT)}: {word}" for f in APP for word in internals if word in f.read_text()]
    assert not found, found


def test_no_function_in_the_library_or_the_app_runs_over_80_lines():
    long = []
    for file, tree in trees(LIBRARY + APP):
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{file.relative_to(ROOT)}:{node.lineno} {node.name} has {length} lines")
        # A page's top-level code is a function too, in all but name.
        body = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom))]
        length = sum(n.end_lineno - n.lineno + 1 for n in body)
        if length > MAX_FUNCTION_LINES:
            long.append(f"{file.relative_to(ROOT)}: {length} lines of top-level statements")
    assert not long, "\n".join(long)


def test_nothing_patches_sys_path():
    files = [f for folder in ("vitrm", "app", "tests", "bench", "docs") for f in (ROOT / folder).rglob("*.py")]
    patched = [str(f.relative_to(ROOT)) for f in files
               if re.search(r"sys\.path\s*(\.(insert|append|extend)|\[.*\]\s*=|\s*\+?=)", f.read_text())]
    assert not patched, patched


def test_the_readmes_five_line_example_runs_as_printed(tmp_path):
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## The library in five lines", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len([line for line in code.splitlines() if line.strip()]) == 5
    photo = tmp_path / "photo.jpg"
    photo.write_bytes((ROOT / "app" / "gallery" / "cat_0001.jpg").read_bytes())
    code = code.replace('"checkpoints/', f'"{ROOT}/checkpoints/')
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    printed = done.stdout.strip()
    assert re.fullmatch(r"tensor\(\[(\d, ){7}\d\]\)", printed), printed     # one class per step, 8 steps
