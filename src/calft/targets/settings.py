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


@dataclass(frozen=True)
class TriesSettings(Section):
    """build-tries and fingerprint: the token appended to every canonical output."""

    SCHEMA_PATH = ("$defs", "tries_settings")
    LABEL = "settings"
    terminator: str
