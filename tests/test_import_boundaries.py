"""The core imports only torch (docs/architecture.md, Layers). Run: pytest tests/test_import_boundaries.py -q"""

import ast
import subprocess
import sys
from pathlib import Path

import flowrl

PKG = Path(flowrl.__file__).parent
STDLIB = set(sys.stdlib_module_names)


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            roots.add(node.module)
    return roots


def test_grpo_files_import_only_torch_and_the_core():
    for path in sorted((PKG / "grpo").glob("*.py")):
        for name in _imported_roots(path):
            ok = name.split(".")[0] in STDLIB | {"torch"} or name.startswith("flowrl.grpo")
            assert ok, f"{path.name} imports {name}: flowrl/grpo may import only torch and flowrl.grpo"


def test_rewards_import_of_flowrl_only_the_core_and_shapes():
    for path in sorted((PKG.parent / "rewards").glob("*.py")):
        for name in _imported_roots(path):
            ok = name.split(".")[0] != "flowrl" or name.startswith(("flowrl.grpo", "flowrl.shapes"))
            assert ok, f"rewards/{path.name} imports {name}: rewards may import only flowrl.grpo and flowrl.shapes"


def test_importing_the_core_loads_no_model_library():
    code = (
        "import sys, flowrl.grpo; bad = [m for m in ('diffusers', 'transformers', 'accelerate', 'peft') "
        "if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
