"""The 102 open-ended "[Verb] a random [category]" prompts (reference spec §10): data only, no
torch, so the report can name them without loading a model stack."""

from __future__ import annotations

import numpy as np

VERBS = ["Think of", "Choose", "Name", "Pick"]
CATEGORIES = [
    "word", "first name", "city", "country", "animal", "food", "job", "hobby", "sport", "color", "flower", "tree",
    "disease", "medicine", "body part", "musical instrument", "book title", "movie title", "historical figure",
    "fictional character", "vegetable", "fruit", "bird", "fish", "mammal", "reptile", "insect", "sea creature",
    "language", "nationality", "mountain", "river", "lake", "island", "planet", "constellation",
    "chemical element", "gemstone", "metal", "household object", "kitchen tool", "piece of clothing",
    "shoe type", "hat style", "vehicle", "car brand", "musical genre", "song title", "band name", "composer",
    "actor", "actress", "director", "painter", "sculptor", "architect", "philosopher", "scientist",
    "mathematician", "inventor", "academic subject", "school supply", "weather condition", "season", "month",
    "weekday", "holiday", "board game", "video game", "toy", "cartoon character", "superhero",
    "mythological figure", "fairy-tale character", "dinosaur", "dog breed", "cat breed", "farm animal",
    "wild animal", "snack", "dessert", "drink", "spice", "herb", "restaurant dish", "disease symptom",
    "medical specialty", "hospital department", "medicine brand", "vitamin", "bone", "muscle", "organ",
    "facial feature", "surname", "baby name for a girl", "baby name for a boy", "capital city",
    "UNESCO world heritage site", "famous landmark", "religion", "programming language",
]


def open_ended_prompts() -> list[str]:
    return [f"{VERBS[k % 4]} a random {category}. Output ONLY the answer." for k, category in enumerate(CATEGORIES)]


def prompt_subset(count: int | None) -> list[int]:
    """Indices of `count` evenly spaced prompts (all 102 when None)."""
    total = len(CATEGORIES)
    return list(range(total)) if count is None or count >= total else \
        np.linspace(0, total - 1, count).round().astype(int).tolist()
