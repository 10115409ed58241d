"""Mutation testing of calft's numeric core: how many small, plausible bugs do the tests catch?

mutmut (pip install -e ".[mutation]") changes one operator, number, string or argument at a time in
the modules below and runs the tests of the module's own stage against each change (a mutant). A
mutant that some test fails on is killed; one every test passes on survived. Each stage runs in its
own scratch copy of the project, so that a mutant is judged by its stage's tests alone, and of those
by the ones that build no model (marked `model` in tests/conftest.py; token trees are checked on a
stand-in model whose logits are a table): mutmut starts a test session per mutant, so a model fixture
would be rebuilt hundreds of times.

    python benchmarks/mutation.py [--stage targets --stage evaluation ...] [--jobs 2]
        [--workdir benchmarks/output/mutation] [--fresh]
    python benchmarks/mutation.py --named   # the hand-made mutants of NAMED, each against its stage

It prints, per module, the mutants, how many were killed, survived or had no test calling their
function, and the kill rate (killed over mutants); then every survivor with its diff. A rerun keeps
mutmut's kills for unchanged functions and tries every survivor again against today's tests; --fresh
starts over. Not part of CI (minutes to an hour per stage on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path("src/calft")


@dataclass(frozen=True)
class Stage:
    modules: tuple[str, ...]  # under src/calft
    tests: tuple[str, ...]  # the oracle: the stage's own test folders or files
    markers: str = "not model"  # which of them: by default those that build no model (one per mutant)

    @property
    def oracle(self) -> list[str]:
        """pytest's selection of the stage's oracle tests."""
        return (["-m", self.markers] if self.markers else []) + list(self.tests)


STAGES = {  # in the order they run: the metrics the tables print first
    "evaluation": Stage(
        ("evaluation/metrics.py", "evaluation/parse.py", "evaluation/logit_kl.py"), ("tests/evaluation",)
    ),
    "training": Stage(("training/schedule.py",), ("tests/training",)),
    "transfer": Stage(("transfer/metrics.py",), ("tests/transfer",)),
    "retention": Stage(("retention/irt.py", "retention/scoring.py"), ("tests/retention",)),
    "report": Stage(("report/aggregates.py",), ("tests/report",)),
    "modeling": Stage(("modeling/trees.py", "modeling/answers.py"), ("tests/modeling",)),
    "targets": Stage(
        ("targets/discretize.py", "targets/tries.py", "targets/families.py", "targets/ragged.py", "targets/prompts.py"),
        tuple(
            f"tests/targets/test_{name}.py"
            for name in ("targets_known_answers", "targets_boundaries", "discretize", "tries", "families", "prompts")
        ),
    ),
}
# Plausible bugs found by hand that once survived every test (issue 34): each must fail its stage's tests.
NAMED = {
    "upper tail dropped": (
        "targets",
        "targets/discretize.py",
        "        mass[last] += np.maximum(0.0, 1.0 - law.cdf(values[last]))\n",
        "",
    ),
    "mean across families": (
        "report",
        "report/aggregates.py",
        "return float(per_family.median())",
        "return float(per_family.mean())",
    ),
    "unbalanced unseen items": (
        "retention",
        "retention/irt.py",
        "np.mean((weights * p)[unseen])",
        "np.mean(p[unseen])",
    ),
    "valid rate over parsed samples": (
        "evaluation",
        "evaluation/metrics.py",
        "float(np.mean(valid)) if len(valid)",
        "float(np.sum(valid) / np.sum(np.isfinite(values))) if len(valid)",
    ),
    "warm-up rounded up": (
        "training",
        "training/schedule.py",
        "math.floor(warmup_ratio * total_steps)",
        "math.ceil(warmup_ratio * total_steps)",
    ),
}
STATUS = {
    1: "killed",
    3: "killed",
    0: "survived",
    5: "no tests",
    33: "no tests",
    36: "timeout",
    24: "timeout",
    -24: "timeout",
    152: "timeout",
    255: "timeout",
    None: "not checked",
}
PYTEST_ARGS = ["-q", "-o", "addopts=", "-p", "no:xdist"]  # one process, none of the suite's own options
SKIPPED = {
    ".git",
    ".venv",
    "mutants",
    "results",
    "resources",
    "logs",
    "output",
    "__pycache__",
    ".snakemake",
    ".pytest_cache",
    ".hypothesis",
}


def copy_project(folder: Path) -> None:
    shutil.copytree(ROOT, folder, dirs_exist_ok=True, ignore=lambda _, names: [n for n in names if n in SKIPPED])


def scratch_copy(stage: str, stage_spec: Stage, workdir: Path, fresh: bool) -> Path:
    """A copy of the project whose pyproject.toml points mutmut at this stage (kept between runs)."""
    folder = workdir / stage
    if fresh:
        shutil.rmtree(folder, ignore_errors=True)
    copy_project(folder)
    settings = {
        "source_paths": ["src"],
        "only_mutate": [str(PACKAGE / module) for module in stage_spec.modules],
        "pytest_add_cli_args": PYTEST_ARGS,
        "pytest_add_cli_args_test_selection": stage_spec.oracle,
        "also_copy": [".test", "workflow", "profiles", "Snakefile", "config.yaml", "config.paper.yaml"],
        "process_isolation": "forkserver",
        "timeout_multiplier": 10.0,
    }
    lines = ["", "[tool.mutmut]"] + [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    pyproject = folder / "pyproject.toml"
    pyproject.write_text((ROOT / "pyproject.toml").read_text() + "\n".join(lines) + "\n")
    return folder


def outcomes(folder: Path, module: str) -> dict[str, str]:
    """Mutant name -> status, from mutmut's record of one module."""
    meta = folder / "mutants" / PACKAGE / (module + ".meta")
    if not meta.exists():
        return {}
    codes = json.loads(meta.read_text())["exit_code_by_key"]
    return {name: STATUS.get(code, "suspicious") for name, code in codes.items()}


def mutmut_run(folder: Path, jobs: int, mutants: list[str] = ()) -> int:
    run = subprocess.run(
        [sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs), *mutants],
        cwd=folder,
        env=os.environ | {"PYTHONPATH": ""},
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        print(run.stdout[-3000:], run.stderr[-3000:], sep="\n")
    return run.returncode


def show(folder: Path, mutant: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "mutmut", "show", mutant], cwd=folder, capture_output=True, text=True
    )
    return result.stdout.strip()


def print_rows(rows: list[tuple]) -> None:
    header = ("module", "mutants", "killed", "survived", "no test", "timeout", "kill rate")
    print("\n{:32} {:>8} {:>7} {:>9} {:>8} {:>8} {:>10}".format(*header))
    for module, total, killed, survived, untested, timeouts, rate in rows:
        print(f"{module:32} {total:8d} {killed:7d} {survived:9d} {untested:8d} {timeouts:8d} {rate:10.1%}", flush=True)


def run_named(workdir: Path) -> int:
    """Apply each NAMED mutant alone to a scratch copy and run its stage's oracle: all must fail."""
    survived = 0
    for label, (stage, module, old, new) in NAMED.items():
        spec = STAGES[stage]
        folder = workdir / "named"
        shutil.rmtree(folder, ignore_errors=True)
        copy_project(folder)
        source = folder / PACKAGE / module
        text = source.read_text()
        assert text.count(old) == 1, f"{label}: the code to mutate is not in {module} once"
        source.write_text(text.replace(old, new))
        command = [sys.executable, "-m", "pytest", *PYTEST_ARGS, "-x", "-p", "no:cacheprovider", *spec.oracle]
        result = subprocess.run(
            command, cwd=folder, env=os.environ | {"PYTHONPATH": str(folder / "src")}, capture_output=True, text=True
        )
        killed = result.returncode == 1
        survived += not killed
        print(f"{label:32} {module:28} {'killed' if killed else 'SURVIVED'}: {result.stdout.strip().splitlines()[-1]}")
    return 1 if survived else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", action="append", choices=sorted(STAGES), help="default: every stage")
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--workdir", type=Path, default=ROOT / "benchmarks" / "output" / "mutation")
    parser.add_argument("--fresh", action="store_true", help="forget earlier results")
    parser.add_argument("--named", action="store_true", help="only the hand-made mutants of NAMED")
    args = parser.parse_args()
    if args.named:
        return run_named(args.workdir)

    rows, survivors = [], []
    for stage in args.stage or list(STAGES):
        spec = STAGES[stage]
        folder = scratch_copy(stage, spec, args.workdir, args.fresh)
        earlier = {name for module in spec.modules for name in outcomes(folder, module)}
        print(f"== {stage}: {', '.join(spec.modules)} against {', '.join(spec.tests)}", flush=True)
        failed = mutmut_run(folder, args.jobs)
        # mutmut keeps a mutant's result while its function is unchanged: earlier survivors meet today's tests
        again = [
            name
            for module in spec.modules
            for name, s in outcomes(folder, module).items()
            if name in earlier and s in ("survived", "no tests")
        ]
        if not failed and again:
            failed = mutmut_run(folder, args.jobs, again)
        if failed:
            return failed
        for module in spec.modules:
            status = outcomes(folder, module)
            counts = Counter(status.values())
            total = len(status)
            rows.append(
                (
                    f"{module}",
                    total,
                    counts["killed"],
                    counts["survived"],
                    counts["no tests"],
                    counts["timeout"],
                    counts["killed"] / total if total else float("nan"),
                )
            )
            survivors += [(folder, name) for name, s in sorted(status.items()) if s not in ("killed", "timeout")]
            print_rows(rows[-1:])

    print_rows(rows)
    for folder, name in survivors:
        print(f"\n-- {name}\n{show(folder, name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
