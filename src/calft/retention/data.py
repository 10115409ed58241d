"""Data of the retention and perplexity stages, prepared once before any model job runs.

* Offline (the local default, nothing downloaded): an arithmetic word-problem probe in tinyGSM8k's
  schema, a multiple-choice probe in tinyMMLU's schema, both generated deterministically from a
  seed; and perplexity slices in PALOMA's on-disk layout (`<slice>/test/*.jsonl.gz`, field `text`)
  made of English documentation that ships with CPython (pydoc topics, standard-library docstrings).
* Cluster: the five tinyBenchmarks datasets from the hub and tinyBenchmarks' released IRT parameter
  file, fetched on the head node. PALOMA itself is gated and is placed by the user (see README).
"""

from __future__ import annotations

import gzip
import importlib
import inspect
import json
import tempfile
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

from calft.artifacts import sha256

TINYBENCHMARKS = {  # task -> (hub dataset, configuration, split)
    "mmlu": ("tinyBenchmarks/tinyMMLU", "all", "test"),
    "hellaswag": ("tinyBenchmarks/tinyHellaswag", None, "validation"),
    "truthfulqa": ("tinyBenchmarks/tinyTruthfulQA", "multiple_choice", "validation"),
    "winogrande": ("tinyBenchmarks/tinyWinogrande", "winogrande_xl", "validation"),
    "gsm8k": ("tinyBenchmarks/tinyGSM8k", "main", "test"),
}
IRT_URL = "https://raw.githubusercontent.com/felipemaiapolo/tinyBenchmarks/main/tinyBenchmarks.pkl"

NAMES = ["Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonah", "Kemi", "Lars"]
ITEMS = ["apples", "marbles", "stickers", "books", "pencils", "cookies", "shells", "coins", "cards", "stamps"]
WORDS = ["anchor", "bridge", "candle", "dragon", "engine", "forest", "garden", "harbor", "island", "jungle",
         "kettle", "ladder", "meadow", "needle", "orchard", "pepper", "quartz", "ribbon", "saddle", "timber"]
DOCSTRING_MODULES = ["argparse", "collections", "contextlib", "csv", "dataclasses", "difflib", "functools",
                     "heapq", "itertools", "json", "logging", "pathlib", "statistics", "string", "textwrap"]


# ---------------------------------------------------------------------------------------------
# Offline retention probes


def _word_problem(rng: np.random.Generator) -> tuple[str, str]:
    """One GSM-style question and its worked answer ending in '#### <number>'."""
    name, item = NAMES[rng.integers(len(NAMES))], ITEMS[rng.integers(len(ITEMS))]
    kind = rng.integers(4)
    if kind == 0:
        a, b = rng.integers(10, 60, size=2)
        c = rng.integers(1, a)
        question = f"{name} has {a} {item}. {name} buys {b} more and then gives {c} to a friend. " \
                   f"How many {item} does {name} have now?"
        work, value = f"{a} + {b} - {c} = {a + b - c}", a + b - c
    elif kind == 1:
        a, b = rng.integers(2, 13, size=2)
        question = f"{name} buys {a} packs of {item} with {b} {item} in each pack. How many {item} does {name} buy?"
        work, value = f"{a} * {b} = {a * b}", a * b
    elif kind == 2:
        b, k = rng.integers(2, 10, size=2)
        question = f"{name} shares {b * k} {item} equally among {b} friends. How many {item} does each friend get?"
        work, value = f"{b * k} / {b} = {k}", k
    else:
        a, b, c = rng.integers(5, 40), rng.integers(2, 8), rng.integers(3, 30)
        question = f"{name} reads {a} pages a day for {b} days and then {c} more pages. " \
                   f"How many pages does {name} read in total?"
        work, value = f"{a} * {b} + {c} = {a * b + c}", a * b + c
    return question, f"{work}\n#### {value}"


def arithmetic_probe(count: int, seed: int, shots: int = 3) -> pd.DataFrame:
    """Word problems in tinyGSM8k's schema: question, answer, input_formatted (few-shot prompt)."""
    rng = np.random.default_rng([seed, 0])
    examples = [_word_problem(rng) for _ in range(shots)]
    prefix = "".join(f"Question: {q}\nAnswer: {a}\n\n" for q, a in examples)
    rows = []
    for _ in range(count):
        question, answer = _word_problem(rng)
        rows.append({"question": question, "answer": answer, "input_formatted": f"{prefix}Question: {question}\nAnswer:"})
    return pd.DataFrame(rows)


def _choice_question(rng: np.random.Generator) -> tuple[str, list[str], int]:
    kind = rng.integers(3)
    if kind == 0:
        a, b = rng.integers(10, 90, size=2)
        right = a + b
        wrong = rng.choice([d for d in range(-9, 10) if d], size=3, replace=False) + right
        question, correct, distractors = f"What is {a} + {b}?", str(right), [str(w) for w in wrong]
    elif kind == 1:
        numbers = rng.choice(np.arange(100, 1000), size=4, replace=False)
        question, correct = "Which of these numbers is the largest?", str(numbers.max())
        distractors = [str(n) for n in numbers if n != numbers.max()]
    else:
        words = [WORDS[i] for i in rng.choice(len(WORDS), size=4, replace=False)]
        question, correct = "Which word comes first in alphabetical order?", min(words)
        distractors = [w for w in words if w != correct]
    gold = int(rng.integers(4))
    choices = [str(d) for d in rng.permutation(distractors)]
    choices.insert(gold, correct)
    return question, choices, gold


def _render_choice(question: str, choices: list[str]) -> str:
    return question + "".join(f"\n{letter}. {choice}" for letter, choice in zip("ABCD", choices)) + "\nAnswer:"


def choice_probe(count: int, seed: int, shots: int = 2) -> pd.DataFrame:
    """Four-option questions in tinyMMLU's schema: question, choices, answer (index), input_formatted."""
    rng = np.random.default_rng([seed, 1])
    header = "The following are multiple choice questions (with answers) about elementary knowledge.\n\n"
    examples = [_choice_question(rng) for _ in range(shots)]
    prefix = header + "".join(f"{_render_choice(q, c)} {'ABCD'[g]}\n\n" for q, c, g in examples)
    rows = []
    for _ in range(count):
        question, choices, gold = _choice_question(rng)
        rows.append({"question": question, "choices": choices, "answer": gold,
                     "input_formatted": prefix + _render_choice(question, choices)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# Offline perplexity slices


def offline_slices(max_documents: int, max_chars: int) -> dict[str, list[dict]]:
    """Documents of two slices, in a fixed order: pydoc's language-reference topics and the module
    docstrings of standard-library modules (documents longer than max_chars are skipped)."""
    from pydoc_data.topics import topics

    slices = {
        "pydoc_topics": [(key, topics[key]) for key in sorted(topics)],
        "stdlib_docstrings": [(name, inspect.getdoc(importlib.import_module(name)) or "")
                              for name in DOCSTRING_MODULES],
    }
    return {name: [{"id": key, "text": text} for key, text in documents
                   if text.strip() and len(text) <= max_chars][:max_documents]
            for name, documents in slices.items()}


def write_slice(folder: Path, documents: list[dict]) -> None:
    """One slice in PALOMA's layout: <folder>/test/part-0000.jsonl.gz."""
    path = folder / "test" / "part-0000.jsonl.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as stream:
        for document in documents:
            stream.write(json.dumps(document, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------------------------------------
# Cluster data (fetched on the head node)


def fetch_tinybenchmarks(output: Path, source: str = "hub") -> None:
    """The five tinyBenchmarks datasets as <output>/<task>.parquet (each must have 100 rows).
    `source` is 'hub', or a local folder holding <hub dataset id>/ folders (offline mirrors)."""
    from datasets import load_dataset

    output.mkdir(parents=True, exist_ok=True)
    for task, (dataset, configuration, split) in TINYBENCHMARKS.items():
        path = dataset if source == "hub" else str(Path(source) / dataset)
        with tempfile.TemporaryDirectory() as cache:  # a fresh read: never a stale cached copy
            frame = load_dataset(path, configuration, split=split, cache_dir=cache).to_pandas()
        if len(frame) != 100:
            raise ValueError(f"{dataset} ({split}) has {len(frame)} rows; tinyBenchmarks datasets have 100")
        frame.to_parquet(output / f"{task}.parquet", index=False)


def fetch_irt_parameters(url: str, output: Path, expected_sha256: str | None) -> str:
    """Download the IRT parameter file; verify the checksum when one is configured. Returns it."""
    partial = output.with_name(output.name + ".partial")
    output.parent.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(url, timeout=120) as response, open(partial, "wb") as stream:
        stream.write(response.read())
    digest = sha256(partial)
    if expected_sha256 and digest != expected_sha256:
        partial.unlink()
        raise ValueError(f"{url}: sha256 {digest} differs from retention.irt_sha256 {expected_sha256}")
    partial.replace(output)
    return digest
