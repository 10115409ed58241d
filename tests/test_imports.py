"""The package's layering: stages import only the core modules and the stages before them, and the
core modules import no stage (config and cli, which sit above every stage, excepted)."""

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src" / "calft"
CORE = {
    "errors", "settings", "methods", "metrics", "evaluations", "variants", "layout", "artifacts", "command", "progress",
    "tracking", "jobs",
}  # fmt: skip
STAGES = ["modeling", "targets", "training", "evaluation", "transfer", "retention", "report"]
TOP = {"config", "slurm"}
COMMANDS = {"cli", "plan"}  # above everything: the command line and the planning of a whole config


def imported_calft_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("calft"):
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names if alias.name.startswith("calft")}
    return names


def unit(module: str) -> str:
    """The layer a dotted module name belongs to: a core or top module, or a stage."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "calft"


def test_no_module_imports_upward():
    rank = {name: 0 for name in CORE} | {stage: i + 1 for i, stage in enumerate(STAGES)}
    rank |= {name: len(STAGES) + 1 for name in TOP} | {name: len(STAGES) + 2 for name in COMMANDS}
    for path in SOURCE.rglob("*.py"):
        own = unit("calft." + ".".join(path.relative_to(SOURCE).with_suffix("").parts))
        for module in imported_calft_modules(path):
            target = unit(module)
            if target not in rank or target == own:
                continue
            assert rank[target] < rank[own] or own in CORE and target in CORE, f"{path.name} imports {module}"


def test_stage_subpackages_match_the_rule_files():
    rules = {path.stem for path in (SOURCE.parents[1] / "workflow" / "rules").glob("*.smk")} - {"common"}
    packages = {path.name for path in SOURCE.iterdir() if (path / "__init__.py").exists()} - CORE
    assert rules == packages == set(STAGES)


def test_nothing_the_report_imports_loads_torch():
    """Tables and figures rebuild from parquet alone: no module the report stage imports, at any
    depth of a function, loads torch (it would cost the aggregate job seconds of start-up)."""
    import subprocess
    import sys

    names = sorted(set().union(*(imported_calft_modules(path) for path in (SOURCE / "report").rglob("*.py"))))
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ModuleNotFoundError:\n"
        "        pass  # a name imported from a module, not a module\n"
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False", names


# A stage imports the core modules and, of the other stages, only modeling (models, token trees, replies)
# and targets (the families and prompts every stage shares). Two arrows remain until the metrics live in
# a registry below the stages: the report recomputes NoveltyBench's utility per prompt (Tables 11-19),
# and its paper comparison counts the paper's optimizer steps with training's own schedule (pure Python).
SHARED_STAGES = {"modeling", "targets"}
EXCEPTIONS = {("report", "calft.transfer.metrics"), ("report", "calft.training.schedule")}


def test_stages_import_no_other_stage_but_modeling_and_targets():
    for path in SOURCE.rglob("*.py"):
        own = unit("calft." + ".".join(path.relative_to(SOURCE).with_suffix("").parts))
        for module in imported_calft_modules(path):
            target = unit(module)
            if own not in STAGES or target not in STAGES or target in SHARED_STAGES | {own}:
                continue
            excepted = any(
                module == name or module.startswith(name + ".") for stage, name in EXCEPTIONS if stage == own
            )
            assert excepted, f"{path.relative_to(SOURCE)} imports {module}"
