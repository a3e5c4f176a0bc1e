"""Layering: the engine does not import the analysis built on it, and the tools are command lines over the package.
Naming: the modules that replaced the ambiguous ``checkpoint`` ones stay the only ones."""

import ast
import re
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


# "checkpoint" named three things; weight_files, weight_layouts and engine.training_state now say which.
REMOVED_MODULES = {"mvit_video.checkpoint", "mvit_video.engine.checkpoints"}


def _imported_modules(path: Path):
    """Every module ``path`` imports, relative imports resolved, ``from X import y`` counted as X and X.y."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1] if node.level else ())
            module = ".".join(part for part in (base, node.module) if part)
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


def test_the_old_checkpoint_modules_stay_gone():
    for module in REMOVED_MODULES:
        path = ROOT.joinpath(*module.split("."))
        assert not path.with_suffix(".py").exists() and not path.is_dir(), f"{module} is back"
    for folder in ("mvit_video", "tools", "tests"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            imported = set(_imported_modules(path)) & REMOVED_MODULES
            assert not imported, f"{path.relative_to(ROOT)} imports {imported}"


# The seed variants' names (and their layers'): the network takes them at its seams and never names them.
VARIANT_NAMES = ("PEG", "CPVT", "CeiT", "LCA", "LeFF", "I2T", "ELSA", "PVT", "SRA", "ConvFFN")


def test_the_network_names_no_variant():
    source = (ROOT / "mvit_video/models/mvit.py").read_text()
    named = [name for name in VARIANT_NAMES if re.search(rf"\b{name}\b", source, flags=re.IGNORECASE)]
    assert not named, f"mvit.py names {named}; the variants belong in models/build.py's table and their own modules"


def test_the_network_compares_no_strings():
    """Layers are chosen in models/build.py; mvit.py never branches on a name (``mode == "conv"`` and the like)."""
    def strings(node: ast.AST) -> bool:  # a string, or a tuple/list/set holding one (``mode in ("conv", "max")``)
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return any(strings(n) for n in node.elts)
        return isinstance(node, ast.Constant) and isinstance(node.value, str)

    tree = ast.parse((ROOT / "mvit_video/models/mvit.py").read_text())
    compared = [ast.unparse(node) for node in ast.walk(tree)
                if isinstance(node, ast.Compare) and any(strings(n) for n in [node.left, *node.comparators])]
    compared += [ast.unparse(node.subject) for node in ast.walk(tree) if isinstance(node, ast.Match)]
    assert not compared, compared
