"""The targets stage's settings: which prompts to discretize and how, and the terminator of the tries."""

from __future__ import annotations

from dataclasses import dataclass

from calft.settings import Section


@dataclass(frozen=True)
class DiscretizeSettings(Section):
    SCHEMA_PATH = ("$defs", "discretize_settings")
    LABEL = "settings"
    prompt_set: str
    decimals: int
    max_bins: int
    number_format: str
    families: list | None
    per_family: int | None
    declared_families: dict  # the config's `families` (calft.targets.declared), recorded by the targets


@dataclass(frozen=True)
class TriesSettings(Section):
    """build-tries and fingerprint: the token appended to every canonical output."""

    SCHEMA_PATH = ("$defs", "tries_settings")
    LABEL = "settings"
    terminator: str


@dataclass(frozen=True)
class ConstructionCostSettings(Section):
    """construction-cost: the precision grid and prompts of Table 24, and the tries' terminator."""

    SCHEMA_PATH = ("$defs", "construction_cost_settings")
    LABEL = "settings"
    construction_cost: dict
    number_format: str
    terminator: str
    reference: dict

    @property
    def grid(self) -> list[tuple[int, int]]:
        cost = self.construction_cost
        return [(decimals, max_bins) for decimals in cost["decimals"] for max_bins in cost["max_bins"]]
