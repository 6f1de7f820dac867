"""The package's structural rules, checked on its source and in fresh interpreters:

- importing `purejaxppo` loads nothing (no JAX, no gymnax); `purejaxppo.train` loads
  the pure core only: none of the host modules (runner, io, cli, acting) and none of
  the host libraries tqdm, orbax, tensorboardX, wandb (anything else it loads, such as
  matplotlib, must come with the environment libraries themselves);
- `core/`, `nn/` and `envs/` import nothing from `acting/`, `runner/`, `io/`, `cli`;
- no module imports a `_private` name from another purejaxppo module;
- no function is longer than 80 lines, `fit` than 110.

Each checker is also run on a small deliberately broken package, so it can fail."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import purejaxppo

PACKAGE = Path(purejaxppo.__file__).parent
HOST_MODULES = ("purejaxppo.runner", "purejaxppo.io", "purejaxppo.cli", "purejaxppo.acting")
HOST_LIBRARIES = ("tqdm", "orbax", "tensorboardX", "wandb")
PURE_LAYERS = ("core", "nn", "envs")
FORBIDDEN_FOR_PURE = ("acting", "runner", "io", "cli")
MAX_LINES = 80
LONGER_ALLOWED = {"runner/fit.py:fit": 110}


# ---- fresh interpreters --------------------------------------------------------------


def modules_after(code: str) -> set[str]:
    """Top-level-and-dotted names in sys.modules after running `code` in a fresh
    interpreter (the interpreter's own start-up modules included)."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def host_modules(loaded: set[str]) -> list[str]:
    return sorted(m for m in loaded if m == "purejaxppo.cli" or m.startswith(HOST_MODULES))


def libraries(loaded: set[str]) -> set[str]:
    return {m.split(".")[0] for m in loaded}


@pytest.fixture(scope="module")
def train_modules() -> set[str]:
    return modules_after(
        "import purejaxppo\npurejaxppo.train\nfrom purejaxppo.core.train import train"
    )


def test_importing_the_package_loads_neither_jax_nor_gymnax():
    # A multi-host program must call jax.distributed.initialize before JAX's backend
    # starts; gymnax starts it when imported, so `import purejaxppo` must not load it.
    loaded = modules_after("import purejaxppo")
    assert "jax" not in loaded and "gymnax" not in loaded
    assert sorted(m for m in loaded if m.startswith("purejaxppo")) == ["purejaxppo"]


def test_train_loads_no_host_module_and_no_host_library(train_modules):
    assert "purejaxppo.core.train" in train_modules  # it did load
    assert host_modules(train_modules) == []
    assert libraries(train_modules) & set(HOST_LIBRARIES) == set()


def test_train_loads_only_libraries_the_env_libraries_load_themselves(train_modules):
    # matplotlib, for instance, comes with gymnax; anything beyond what the adapters'
    # own libraries and the core's JAX stack bring is a leak from the project.
    baseline = modules_after("import jax, flax.linen, optax, numpy, gymnax")
    extra = libraries(train_modules) - libraries(baseline) - {"purejaxppo"}
    assert extra == set()


def test_the_import_check_sees_a_host_module():
    # What the checks above look for is really detected when it is loaded (the host
    # side imports its libraries lazily, so tqdm is imported here by hand).
    loaded = modules_after("import purejaxppo.runner.fit, tqdm.auto")
    assert "purejaxppo.runner.fit" in host_modules(loaded)
    assert libraries(loaded) & set(HOST_LIBRARIES) == {"tqdm"}


# ---- the source ----------------------------------------------------------------------


def modules(root: Path):
    """(module name, path, parsed tree) for every .py file under the package `root`."""
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path, ast.parse(path.read_text(), str(path))


def imported_modules(tree: ast.AST, module: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `tree`, nested ones and
    `importlib.import_module("...")` with a literal name included."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package = module.split(".")[: -node.level] if module else []
                base = ".".join([*package, *([base] if base else [])])
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def layering_violations(root: Path) -> list[str]:
    name = root.name
    bad = []
    for module, path, tree in modules(root):
        layer = module.split(".")[1] if module.count(".") else ""
        if layer not in PURE_LAYERS:
            continue
        for line, target in imported_modules(tree, module):
            parts = target.split(".")
            if parts[0] == name and len(parts) > 1 and parts[1] in FORBIDDEN_FOR_PURE:
                bad.append(f"{path.relative_to(root)}:{line} imports {target}")
    return bad


def private_import_violations(root: Path) -> list[str]:
    """`from pkg.other import _name`, and `alias._name` where alias is another package
    module bound by an import."""
    name = root.name
    bad = []
    for module, path, tree in modules(root):
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                source = imported_modules(ast.Module([node], []), module)[0][1]
                if source.split(".")[0] != name or source == module:
                    continue
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        bad.append(f"{path.relative_to(root)}:{node.lineno} {source}.{alias.name}")
                    else:
                        aliases[alias.asname or alias.name] = f"{source}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == name and alias.asname:
                        aliases[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                bad.append(f"{path.relative_to(root)}:{node.lineno} {node.value.id}.{node.attr}")
    return bad


def definitions(node: ast.AST, prefix: str = ""):
    """(qualified name, node) of every def in `node`, nested ones and methods included."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            qual = f"{prefix}{child.name}"
            if not isinstance(child, ast.ClassDef):
                yield qual, child
            yield from definitions(child, f"{qual}.")
        else:
            yield from definitions(child, prefix)


def long_functions(root: Path) -> list[str]:
    """'path:qualified.name N lines' for every def (nested included) over its limit,
    counting end_lineno - lineno + 1 (the def line to the last line of its body)."""
    bad = []
    for _, path, tree in modules(root):
        rel = path.relative_to(root).as_posix()
        for qual, node in definitions(tree):
            lines = node.end_lineno - node.lineno + 1
            if lines > LONGER_ALLOWED.get(f"{rel}:{qual}", MAX_LINES):
                bad.append(f"{rel}:{qual} {lines} lines")
    return bad


def test_pure_layers_import_no_host_layer():
    assert layering_violations(PACKAGE) == []


def test_no_private_name_is_imported_across_modules():
    assert private_import_violations(PACKAGE) == []


def test_no_function_is_longer_than_80_lines_and_fit_than_110():
    assert long_functions(PACKAGE) == []


def test_the_source_checks_catch_a_broken_package(tmp_path):
    pkg = tmp_path / "purejaxppo"
    files = {
        "__init__.py": "",
        "core/__init__.py": "",
        "core/train.py": "from purejaxppo.runner.fit import fit\nimport purejaxppo.io.loggers\n",
        "nn/__init__.py": "",
        "nn/networks.py": "def f():\n    from ..acting import policy\n",
        "envs/__init__.py": (
            "import importlib\n\ndef g():\n    importlib.import_module('purejaxppo.cli')\n"
        ),
        "acting/__init__.py": "",
        "acting/policy.py": (
            "from purejaxppo.core.train import _helper\n"
            "import purejaxppo.core.train as T\n"
            "x = T._secret\n"
            "def long():\n" + "    pass\n" * 80 + "def ok():\n" + "    pass\n" * 79
        ),
        "runner/__init__.py": "",
        "runner/fit.py": "def fit():\n"
        + "    pass\n" * 109
        + "\nclass C:\n    def m(self):\n"
        + "        pass\n" * 80,
    }
    for rel, text in files.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(textwrap.dedent(text))
    assert layering_violations(pkg) == [
        "core/train.py:1 imports purejaxppo.runner.fit",
        "core/train.py:1 imports purejaxppo.runner.fit.fit",
        "core/train.py:2 imports purejaxppo.io.loggers",
        "envs/__init__.py:4 imports purejaxppo.cli",
        "nn/networks.py:2 imports purejaxppo.acting",
        "nn/networks.py:2 imports purejaxppo.acting.policy",
    ]
    assert private_import_violations(pkg) == [
        "acting/policy.py:1 purejaxppo.core.train._helper",
        "acting/policy.py:3 T._secret",
    ]
    assert long_functions(pkg) == ["acting/policy.py:long 81 lines", "runner/fit.py:C.m 81 lines"]
