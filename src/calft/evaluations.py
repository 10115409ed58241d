"""The per-model evaluations, one registry: what each one is, which stage and rule run it, the file it
writes, and the config switch that turns it on.

The results layout's report inputs, the methods (calft.methods: which evaluations each one runs),
the training variants, the workflow (common.smk) and the report's selection read this list. An
evaluation that calft does not know brings the columns its table averages over prompts; the report
then writes that table (calft.report.items) without further code. Cheap to import.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from calft import layout
from calft.artifacts.kinds import KINDS, Kind


@dataclass(frozen=True)
class Evaluation:
    name: str  # as the layout, the methods, the variants and the report's selection name it
    stage: str  # the stage that runs it: workflow/rules/<stage>.smk and calft.<stage>
    rule: str  # its rule in that file
    results: str  # the calft.layout template of the file it writes, per model, method and variant
    switch: str | None = None  # the config section whose `enabled` turns it on ("transfer.mcq"); None: always
    per_prompt_set: bool = False  # one file per prompt set ({prompt_set} in `results`)
    table_columns: tuple[tuple[str, str, str], ...] = ()  # (column, label, best) its own table averages over prompts
    schema: pa.Schema | None = None  # its results file's, for one that calft.artifacts does not know yet

    def enabled(self, config: dict) -> bool:
        """Whether a workflow config turns it on."""
        if self.switch is None:
            return True
        section = config
        for key in self.switch.split("."):
            section = section[key]
        return bool(section["enabled"])


EVALUATIONS: dict[str, Evaluation] = {}


def register_evaluation(evaluation: Evaluation) -> Evaluation:
    if evaluation.name in EVALUATIONS:
        raise ValueError(f"an evaluation named '{evaluation.name}' is already registered")
    EVALUATIONS[evaluation.name] = evaluation
    if evaluation.schema is not None:
        KINDS[evaluation.name] = Kind(evaluation.name, evaluation.schema)
    return evaluation


for _evaluation in (
    Evaluation("scores", "evaluation", "score", layout.SCORES, per_prompt_set=True),
    Evaluation("logit_kl", "evaluation", "logit_kl", layout.LOGIT_KL, per_prompt_set=True),
    Evaluation("retention", "retention", "retention", layout.RETENTION, "retention"),
    Evaluation("perplexity", "retention", "perplexity", layout.PERPLEXITY, "perplexity"),
    Evaluation("open_ended", "transfer", "open_ended", layout.OPEN_ENDED, "transfer.open_ended"),
    Evaluation("mcq", "transfer", "mcq", layout.MCQ, "transfer.mcq"),
    Evaluation("noveltybench", "transfer", "noveltybench", layout.NOVELTY, "transfer.noveltybench"),
):
    register_evaluation(_evaluation)


def optional() -> list[Evaluation]:
    """The evaluations a config turns on or off, in registry order."""
    return [evaluation for evaluation in EVALUATIONS.values() if evaluation.switch]
