"""The methods calft compares, in table order: what each one is and which evaluations it runs.

Every other place that knows a method reads it from here: the results layout, the workflow's rules
and wildcards, the command line, the tables and the figures. Adding a method is one entry (and, for
a trained one, its training in calft.training). Cheap to import: the workflow reads it in every job.
"""

from __future__ import annotations

from dataclasses import dataclass

# The per-model evaluations, named as the results layout names their files.
EVALUATIONS = ("scores", "logit_kl", "retention", "perplexity", "open_ended", "mcq", "noveltybench")


@dataclass(frozen=True)
class Method:
    name: str
    adapter: bool  # a LoRA adapter trained by `calft train`, evaluated on top of the base model
    prompting: str  # "direct": the evaluation prompt as it is; "ssot": String Seed of Thought
    evaluations: tuple[str, ...]  # among EVALUATIONS
    color: str  # in every figure
    baseline: bool = False  # compared against in its own tables, not in the main ones

    @property
    def main(self) -> bool:
        return not self.baseline


METHODS = {method.name: method for method in (
    Method("base", adapter=False, prompting="direct", evaluations=EVALUATIONS, color="#9e9e9e"),
    Method("soft", adapter=True, prompting="direct", evaluations=EVALUATIONS, color="#1f77b4"),
    Method("hard", adapter=True, prompting="direct", evaluations=EVALUATIONS, color="#ff7f0e"),
    Method("ssot", adapter=False, prompting="ssot", evaluations=("scores", "open_ended"), color="#2ca02c",
           baseline=True),
)}

MAIN = tuple(name for name, method in METHODS.items() if method.main)
TRAINED = tuple(name for name, method in METHODS.items() if method.adapter)
BASELINES = tuple(name for name, method in METHODS.items() if method.baseline)
