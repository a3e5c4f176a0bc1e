"""Layering: the engine does not import the analysis built on it, and the tools are command lines over the package."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_engine_does_not_import_the_analysis():
    # a fresh interpreter: nothing imported before decides the answer
    code = ("import sys, mvit_video.engine, mvit_video.engine.launch, mvit_video.engine.trainer; "
            "print(sorted(m for m in sys.modules if m.startswith('mvit_video.analysis')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# `benchmark.py data` is bench_data.py's own command line, handed its arguments.
SUBCOMMANDS = {("benchmark", "bench_data")}


def test_no_tool_imports_another_tool():
    tools = {path.stem for path in (ROOT / "tools").glob("*.py")} - {"_paths"}
    for path in sorted((ROOT / "tools").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            imported = {name for name in set(names) & tools if (path.stem, name) not in SUBCOMMANDS}
            assert not imported, f"{path.name} imports {imported}"
