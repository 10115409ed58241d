"""What the report's inputs record, checked against the cells they fill.

A results file sits in the folder of a model, a method (and a training variant) and a prompt set;
its provenance records what actually ran: the model (by its name in `models`), the adapter with the
method and settings it was trained with, String Seed of Thought or not (and which instruction), and
the prompt set. The report refuses a file whose record names another cell (a file copied from
another results folder) and two SSOT wordings in one report, and prints the training settings the
records hold, never those of today's config.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from calft import artifacts
from calft.errors import UserError
from calft.methods import METHODS, SEED_THEN_ANSWER


@dataclass(frozen=True)
class Cell:
    """Where a results file sits: model, method, training variant ('' the final setting), prompt set."""

    model: str
    method: str
    variant: str = ""
    prompt_set: str | None = None

    @classmethod
    def of(cls, kind: str, key: tuple, variants: bool) -> Cell:
        """The cell of an input of `kind` keyed (model, method[, variant][, prompt set]) (calft.layout)."""
        model, method, *rest = key
        variant = rest.pop(0) if variants else ""
        prompt_set = rest[0] if rest else ("ood" if kind == "ood_samples" else None)
        return cls(model, method, variant, prompt_set)

    @property
    def label(self) -> str:
        run = f"{self.method}~{self.variant}" if self.variant else self.method
        return f"{self.model}/{run}" + (f" ({self.prompt_set})" if self.prompt_set else "")


def _run(config: dict) -> dict:
    """The part of a record that says what ran: a score's is its samples' record."""
    samples = config.get("samples")
    return samples if isinstance(samples, dict) else config


def _recorded_prompt_set(config: dict) -> str | None:
    for holder in (config.get("reference"), _run(config).get("targets")):
        if isinstance(holder, dict) and holder.get("prompt_set"):
            return holder["prompt_set"]
    return None


def cell_problem(path: Path, cell: Cell, config: dict) -> str | None:
    """How the record `config` of the file `path` contradicts its cell, or None."""
    ran = _run(config)
    model = ran.get("model") if isinstance(ran.get("model"), dict) else {}
    if model.get("name") not in (None, cell.model):
        return f"records model '{model['name']}'"
    method = METHODS[cell.method]
    expected = cell.method if method.adapter else None
    if "method" in ran:  # a training log records its method itself
        trained = ran["method"]
    elif "adapter" not in ran:
        trained = expected  # a record that does not say
    elif isinstance(ran["adapter"], dict):
        trained = ran["adapter"].get("method")
    elif ran["adapter"] is None:
        trained = None
    else:  # older records name only the adapter's folder
        trained = expected if method.adapter else "another"
    if trained != expected:
        return f"records {'the base model' if trained is None else f'a {trained} adapter'}"
    ssot = ran.get("ssot")
    if ssot is not None and ssot != (method.prompting == SEED_THEN_ANSWER):
        return "records String Seed of Thought prompting" if ssot else "records direct prompting"
    recorded_set = _recorded_prompt_set(config)
    if cell.prompt_set and recorded_set and recorded_set != cell.prompt_set:
        return f"records prompt set '{recorded_set}'"
    return None


GRID = ("prompt_set", "decimals", "max_bins")


def _trained(config: dict) -> tuple | None:
    """(training targets' grid, training settings) of a training log's record or of the adapter a
    result records; None where it does not say."""
    holder = config if "method" in config else _run(config).get("adapter")
    if not isinstance(holder, dict) or not isinstance(holder.get("targets"), dict):
        return None
    return tuple(holder["targets"].get(key) for key in GRID), holder.get("training")


def _adapter_problem(config: dict, log_config: dict | None, cell: Cell) -> str | None:
    """A result of a trained cell must record the adapter its folder's training log records."""
    recorded, trained = _trained(config), _trained(log_config) if log_config else None
    if recorded is None or trained is None or recorded == trained:
        return None
    (prompt_set, decimals, bins), _ = recorded
    return (
        f"records an adapter trained on d={decimals}, {bins} bins with other settings than the training log "
        f"of {cell.model}/{cell.method}{'~' + cell.variant if cell.variant else ''} records"
    )


def check_cells(inputs: dict, variants: bool = False) -> None:
    """Every input's record agrees with the cell it fills (see cell_problem), and a trained cell's
    results record the adapter its training log records; the first that does not is an error naming
    the file, its cell and what it records."""
    logs = {
        Cell.of("train_log", key, variants): artifacts.read_provenance(path)["config"]
        for key, path in inputs.get("train_log", {}).items()
        if Path(path).exists()
    }
    instructions = {}
    for kind, paths in inputs.items():
        for key, path in paths.items():
            if not Path(path).exists():
                continue  # the reader names a missing file
            cell = Cell.of(kind, key, variants)
            config = artifacts.read_provenance(path)["config"]
            problem = cell_problem(path, cell, config) or _adapter_problem(config, logs.get(_trained_cell(cell)), cell)
            if problem:
                raise UserError(
                    f"{path} fills the cell {cell.label} but {problem}: it was copied from another results "
                    "folder? Rerun the step that makes it"
                )
            _check_one_instruction(instructions, path, _run(config).get("ssot_instruction"))


def _check_one_instruction(seen: dict, path, instruction) -> None:
    """All results prompted with String Seed of Thought used one text per instruction (a report
    never compares two wordings of the baseline)."""
    if not isinstance(instruction, dict):
        return
    first = seen.setdefault(instruction.get("role"), (instruction.get("sha256"), path))
    if first[0] != instruction.get("sha256"):
        raise UserError(
            f"{first[1]} and {path} were prompted with two different SSOT instructions "
            f"'{instruction.get('role')}' (sha256 {str(first[0])[:12]}… and {str(instruction.get('sha256'))[:12]}…): "
            "one report compares one wording. Rerun the SSOT jobs with the instruction file the config names "
            "(`snakemake all` reruns those older than the file)"
        )


def _trained_cell(cell: Cell) -> Cell:
    return Cell(cell.model, cell.method, cell.variant)


def trained_grid(train_log: Path, method: str) -> dict:
    """The settings Tables 25-26 print for a run, as its training log records them."""
    config = artifacts.read_provenance(train_log)["config"]
    training, targets = config.get("training"), config.get("targets")
    if not isinstance(training, dict) or not isinstance(targets, dict):
        raise UserError(f"{train_log} records no training settings: retrain it with this version of calft")
    schedule = METHODS[method].training.schedule(training)
    return {
        "decimals": targets.get("decimals"),
        "max_bins": targets.get("max_bins"),
        "draws_per_prompt": schedule["draws_per_prompt"],
        "epochs": schedule["epochs"],
    }
