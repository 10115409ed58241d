"""Data of the retention and perplexity stages, prepared once before any model job runs.

* Offline (the local default, nothing downloaded): an arithmetic word-problem probe in tinyGSM8k's
  schema, a multiple-choice probe in tinyMMLU's schema, both generated deterministically from a
  seed; and perplexity slices in PALOMA's on-disk layout (`<slice>/test/*.jsonl.gz`, field `text`)
  made of English documentation that ships with CPython (pydoc topics, standard-library docstrings).
* Cluster: the five tinyBenchmarks datasets from the hub, tinyBenchmarks' released IRT parameter
  file, and PALOMA's slices (gated: the user accepts its terms and logs in), fetched on the head node.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import inspect
import json
import pickle
import shutil
import tempfile
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

from calft import layout
from calft.artifacts import atomic_path, open_regular, provenance
from calft.errors import UserError

TINYBENCHMARKS = {  # task -> (hub dataset, configuration, split)
    "mmlu": ("tinyBenchmarks/tinyMMLU", "all", "test"),
    "hellaswag": ("tinyBenchmarks/tinyHellaswag", None, "validation"),
    "truthfulqa": ("tinyBenchmarks/tinyTruthfulQA", "multiple_choice", "validation"),
    "winogrande": ("tinyBenchmarks/tinyWinogrande", "winogrande_xl", "validation"),
    "gsm8k": ("tinyBenchmarks/tinyGSM8k", "main", "test"),
}

NAMES = ["Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonah", "Kemi", "Lars"]
ITEMS = ["apples", "marbles", "stickers", "books", "pencils", "cookies", "shells", "coins", "cards", "stamps"]
WORDS = [
    "anchor",
    "bridge",
    "candle",
    "dragon",
    "engine",
    "forest",
    "garden",
    "harbor",
    "island",
    "jungle",
    "kettle",
    "ladder",
    "meadow",
    "needle",
    "orchard",
    "pepper",
    "quartz",
    "ribbon",
    "saddle",
    "timber",
]
DOCSTRING_MODULES = [
    "argparse",
    "collections",
    "contextlib",
    "csv",
    "dataclasses",
    "difflib",
    "functools",
    "heapq",
    "itertools",
    "json",
    "logging",
    "pathlib",
    "statistics",
    "string",
    "textwrap",
]


# ---------------------------------------------------------------------------------------------
# Offline retention probes


def _word_problem(rng: np.random.Generator) -> tuple[str, str]:
    """One GSM-style question and its worked answer ending in '#### <number>'."""
    name, item = NAMES[rng.integers(len(NAMES))], ITEMS[rng.integers(len(ITEMS))]
    kind = rng.integers(4)
    if kind == 0:
        a, b = rng.integers(10, 60, size=2)
        c = rng.integers(1, a)
        question = (
            f"{name} has {a} {item}. {name} buys {b} more and then gives {c} to a friend. "
            f"How many {item} does {name} have now?"
        )
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
        question = (
            f"{name} reads {a} pages a day for {b} days and then {c} more pages. "
            f"How many pages does {name} read in total?"
        )
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
        rows.append(
            {"question": question, "answer": answer, "input_formatted": f"{prefix}Question: {question}\nAnswer:"}
        )
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
        rows.append(
            {
                "question": question,
                "choices": choices,
                "answer": gold,
                "input_formatted": prefix + _render_choice(question, choices),
            }
        )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# Offline perplexity slices


def offline_slices(max_documents: int, max_chars: int) -> dict[str, list[dict]]:
    """Documents of two slices, in a fixed order: pydoc's language-reference topics and the module
    docstrings of standard-library modules (documents longer than max_chars are skipped)."""
    from pydoc_data.topics import topics

    slices = {
        "pydoc_topics": [(key, topics[key]) for key in sorted(topics)],
        "stdlib_docstrings": [
            (name, inspect.getdoc(importlib.import_module(name)) or "") for name in DOCSTRING_MODULES
        ],
    }
    return {
        name: [{"id": key, "text": text} for key, text in documents if text.strip() and len(text) <= max_chars][
            :max_documents
        ]
        for name, documents in slices.items()
    }


def write_slice(folder: Path, documents: list[dict]) -> None:
    """One slice in PALOMA's layout: <folder>/test/part-0000.jsonl.gz."""
    path = folder / "test" / "part-0000.jsonl.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as stream:
        for document in documents:
            stream.write(json.dumps(document, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------------------------------------
# Cluster data (fetched on the head node)


def fetch_tinybenchmarks(output: Path, source: str = "hub", revisions: dict | None = None) -> dict:
    """The five tinyBenchmarks datasets as <output>/<task>.parquet (each must have 100 rows).
    `source` is 'hub' (a snapshot of each dataset repository at its configured revision, default
    the current main) or a local folder holding <hub dataset id>/ mirrors. Returns task -> the
    commit read ('local' for a mirror)."""
    from datasets import load_dataset

    output.mkdir(parents=True, exist_ok=True)
    read = {}
    for task, (dataset, configuration, split) in TINYBENCHMARKS.items():
        if source == "hub":
            folder = hub_snapshot(dataset, (revisions or {}).get(task))
            read[task] = folder.name
        else:
            folder, read[task] = Path(source) / dataset, "local"
        with tempfile.TemporaryDirectory() as cache:  # a fresh read: never a stale cached copy
            frame = load_dataset(str(folder), configuration, split=split, cache_dir=cache).to_pandas()
        if len(frame) != 100:
            raise UserError(f"{dataset} ({split}) has {len(frame)} rows; tinyBenchmarks datasets have 100")
        frame.to_parquet(output / f"{task}.parquet", index=False)
    return read


def hub_snapshot(repository: str, revision: str | None, patterns: list[str] | None = None) -> Path:
    """A dataset repository's snapshot folder in the Hugging Face cache, at `revision` (default: the
    current main); the folder's name is the commit."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(
            snapshot_download(repository, repo_type="dataset", revision=revision or "main", allow_patterns=patterns)
        )
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as error:
        raise UserError(
            f"cannot fetch the dataset {repository} at revision {revision or 'main'} ({error}); gated "
            "datasets need `hf auth login` and accepted terms"
        ) from None


def fetch_paloma(output: Path, repository: str, revision: str | None, slices: list[str], split: str) -> str:
    """PALOMA's slices (gated: the user's Hugging Face login) copied into <output>/<slice>/<split>/.
    Returns the commit read."""
    snapshot = hub_snapshot(repository, revision, [f"{name}/{split}/*" for name in slices])
    for name in slices:
        files = layout.paloma_files(snapshot, name, split)
        if not files:
            raise UserError(f"{repository} at {snapshot.name} has no {name}/{split}/*.jsonl.gz files")
        (output / name / split).mkdir(parents=True)
        for file in files:
            shutil.copyfile(file, output / name / split / file.name)
    return snapshot.name


# tinyBenchmarks' IRT release is a pickle. It is unpickled once, when fetched, with nothing but plain
# containers and numpy arrays allowed (numbers and strings need no global), and converted into a
# numpy archive that later jobs read without unpickling anything.
IRT_RELEASE_GLOBALS = (
    {("builtins", name) for name in ("dict", "list", "tuple", "set", "frozenset")}
    | {
        (module, name)
        for module in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name in ("_reconstruct", "scalar")
    }
    | {("numpy", "ndarray"), ("numpy", "dtype")}
)


class _ReleaseUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in IRT_RELEASE_GLOBALS:
            raise UserError(
                f"the IRT parameter file refers to {module}.{name}; only plain containers and numpy arrays are accepted"
            )
        return super().find_class(module, name)


def _to_tree(node, arrays: dict):
    """A JSON tree of the release, its arrays moved into `arrays` (by name)."""
    if isinstance(node, dict):
        return {"dict": {str(key): _to_tree(value, arrays) for key, value in node.items()}}
    if isinstance(node, (list, tuple, set, frozenset, np.ndarray)):
        array = np.asarray(list(node) if isinstance(node, (set, frozenset)) else node)
        if array.dtype.hasobject:
            if isinstance(node, np.ndarray):
                raise UserError("the IRT parameter file holds an array of Python objects; only numbers are accepted")
            return {"list": [_to_tree(value, arrays) for value in node]}
        name = f"a{len(arrays)}"
        arrays[name] = array
        return {"array": name}
    if isinstance(node, (bool, int, float, np.number)):
        return {"number": node.item() if isinstance(node, np.number) else node}
    if isinstance(node, str):
        return {"text": node}
    raise UserError(f"the IRT parameter file holds a {type(node).__name__}; only containers and numbers are accepted")


def _from_tree(node, arrays):
    kind, value = next(iter(node.items()))
    if kind == "dict":
        return {key: _from_tree(child, arrays) for key, child in value.items()}
    if kind == "list":
        return [_from_tree(child, arrays) for child in value]
    return arrays[value] if kind == "array" else value


def convert_irt_release(release: bytes, output: Path, info: dict) -> None:
    """The IRT pickle as a numpy archive: its arrays, its structure as JSON in `__tree__`, and its
    provenance `info` in `__provenance__`."""
    import io

    try:
        raw = _ReleaseUnpickler(io.BytesIO(release)).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise UserError(f"the IRT parameter file is not a valid release ({error})") from None
    arrays: dict[str, np.ndarray] = {}
    tree = _to_tree(raw, arrays)
    with atomic_path(output, "irt_parameters") as temporary, open(temporary, "wb") as stream:
        np.savez(stream, __tree__=np.array(json.dumps(tree)), __provenance__=np.array(json.dumps(info)), **arrays)


def load_bundles(path: Path) -> dict:
    """The 'mmlu' and 'lb' bundles of a converted IRT parameter archive (no unpickling)."""
    from calft.retention.irt import Bundle

    try:
        with open_regular(path) as stream, np.load(stream, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        raw = _from_tree(json.loads(str(arrays.pop("__tree__"))), arrays)
        missing = {"mmlu", "lb"} - set(raw)
        if missing:
            raise UserError(f"{path} lacks the IRT bundles {sorted(missing)}")
        return {name: Bundle.from_release(raw[name]) for name in ("mmlu", "lb")}
    except UserError:
        raise
    except Exception as error:  # noqa: BLE001 - a damaged zip, JSON or tree raises its own kinds
        raise UserError(
            f"{path} is not a converted IRT parameter archive ({type(error).__name__}: {error}); fetch it "
            "again with calft fetch-irt"
        ) from None


def fetch_irt_parameters(url: str, output: Path, expected_sha256: str | None) -> str:
    """Download the IRT release, verify its checksum (an unverified download is refused) and convert
    it into a numpy archive at `output`. Returns the release's sha256."""
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            release = response.read()
    except (OSError, ValueError) as error:  # URLError and HTTPError are OSErrors; ValueError: not a URL
        raise UserError(f"cannot fetch retention.irt_url {url} ({error})") from None
    digest = hashlib.sha256(release).hexdigest()
    if not expected_sha256:
        raise UserError(
            f"retention.irt_sha256 is not set, and calft uses no unverified download: {url} has sha256 "
            f"{digest}; check it against a trusted copy of the release and set retention.irt_sha256"
        )
    if digest != expected_sha256:
        raise UserError(f"{url}: sha256 {digest} differs from retention.irt_sha256 {expected_sha256}")
    convert_irt_release(release, output, provenance("irt_parameters", {"url": url, "sha256": digest}))
    return digest
