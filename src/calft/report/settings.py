"""The report stage's settings: what the tables and figures cover."""

from __future__ import annotations

from dataclasses import dataclass

from calft import methods
from calft.settings import Section


@dataclass(frozen=True)
class ReportSelection(Section):
    """Models, methods (calft.methods, in table order), prompt sets and the optional stages."""

    SCHEMA_PATH = ("$defs", "report_settings")
    LABEL = "settings"
    models: list
    methods: list
    adapters: dict  # the declared adapters among the methods, each with its one model
    families: dict  # the config's declared families (calft.targets.declared)
    prompt_sets: list
    evaluations: list  # the optional evaluations (calft.evaluations) whose items to write
    ablations: dict | None
    statistics: dict  # min_valid_samples and bootstrap (the config's report section)

    def __post_init__(self):
        from calft.targets import declared

        methods.register_adapters(self.adapters)  # the declared adapters join the methods registry
        declared.register(self.families)  # and the declared families the families' registry

    def cells(self) -> list[tuple[str, str]]:
        """The (model, method) pairs the report covers: every method on every model, except that a
        declared adapter runs on its own base model only."""
        return [
            (model, name) for model in self.models for name in self.methods if methods.METHODS[name].applies_to(model)
        ]

    @property
    def bootstrap(self):
        from calft.report.intervals import Bootstrap

        return Bootstrap(**self.statistics["bootstrap"])

    @property
    def min_valid_samples(self) -> int:
        return self.statistics["min_valid_samples"]

    @property
    def ablation_selection(self) -> AblationSelection | None:
        return AblationSelection.from_dict(self.ablations) if self.ablations is not None else None

    def runs(self, evaluation: str) -> bool:
        """Whether the report covers an evaluation: always for those no config turns off."""
        from calft.evaluations import EVALUATIONS

        return EVALUATIONS[evaluation].switch is None or evaluation in self.evaluations

    @property
    def transfer(self) -> bool:
        """Whether Table 1 has a column: open-ended generation, MCQ or NoveltyBench."""
        return any(self.runs(name) for name in ("open_ended", "mcq", "noveltybench"))

    @property
    def baselines(self) -> list[str]:
        return [name for name in self.methods if methods.METHODS[name].baseline]

    def problems(self) -> list[str]:
        from calft.evaluations import optional

        unknown = [name for name in self.methods if name not in methods.METHODS]
        if unknown:
            return [f"settings.methods: unknown method '{unknown[0]}' ({', '.join(methods.METHODS)})"]
        known = [evaluation.name for evaluation in optional()]
        unknown = [name for name in self.evaluations if name not in known]
        if unknown:
            return [f"settings.evaluations: unknown evaluation '{unknown[0]}' ({', '.join(known)})"]
        return []


@dataclass(frozen=True)
class AblationRun:
    """A row of Tables 25-26: a trained method's final setting (variant "") or one of its variants."""

    method: str
    variant: str
    models: list
    decimals: int
    max_bins: int
    draws_per_prompt: int
    epochs: int


@dataclass(frozen=True)
class AblationSelection(Section):
    """The ablated models (in column order), the prompt sets, and the runs of Tables 25-26."""

    SCHEMA_PATH = ("$defs", "ablation_report_settings")
    LABEL = "settings"
    models: list
    prompt_sets: list
    runs: list

    @property
    def rows(self) -> list[AblationRun]:
        return [AblationRun(**run) for run in self.runs]

    @property
    def methods(self) -> list[str]:
        """The trained methods with variants, in table order."""
        return [name for name in methods.TRAINED if any(run.method == name and run.variant for run in self.rows)]

    @property
    def soft_models(self) -> list[str]:
        """The models of Figure 14: those with soft variants."""
        varied = {model for run in self.rows if run.method == methods.SOFT and run.variant for model in run.models}
        return [model for model in self.models if model in varied]

    def problems(self) -> list[str]:
        problems = []
        for name in self.methods:
            finals = [run for run in self.rows if run.method == name and not run.variant]
            if len(finals) != 1:
                problems.append(
                    f"settings.runs: {name} has variants and needs exactly one final run (variant ''), "
                    f"not {len(finals)}"
                )
        seen = set()
        for run in self.rows:
            if (run.method, run.variant) in seen:
                problems.append(f"settings.runs: run {run.method}~{run.variant} is listed twice")
            seen.add((run.method, run.variant))
            unknown = [model for model in run.models if model not in self.models]
            if unknown:
                problems.append(
                    f"settings.runs: run {run.method}~{run.variant} names model '{unknown[0]}', "
                    "which is not among settings.models"
                )
        return problems
