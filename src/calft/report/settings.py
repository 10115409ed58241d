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
    prompt_sets: list
    retention: bool
    perplexity: bool
    open_ended: bool
    mcq: bool
    noveltybench: bool

    @property
    def transfer(self) -> bool:
        return self.open_ended or self.mcq or self.noveltybench

    @property
    def baselines(self) -> list[str]:
        return [name for name in self.methods if methods.METHODS[name].baseline]

    def problems(self) -> list[str]:
        unknown = [name for name in self.methods if name not in methods.METHODS]
        if unknown:
            return [f"settings.methods: unknown method '{unknown[0]}' ({', '.join(methods.METHODS)})"]
        return []
