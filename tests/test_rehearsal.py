"""The paper run rehearsed: config.paper.yaml with only its sizes turned down (prompts per family,
samples, steps, token budgets, items, documents) and its data sources pointed at local copies, its
twelve models, protocols and methods untouched. Each model is a tiny random-init replica of its real
architecture class with its family's chat template and special tokens (tests/conftest.py), served by
a local hub (tests/local_hub.py) under its hub id at the commit config.paper.yaml pins; NoveltyBench's
evaluators and the tinyBenchmarks and PALOMA datasets are served there too. The workflow downloads
everything itself into an empty Hugging Face cache and every job loads it offline, launched as the
SLURM profile launches it (torchrun over the profile's GPUs as gloo ranks).

CI rehearses one model of each chat protocol through training, sampling and scoring. The whole
rehearsal, `all` for the twelve models and then `ablations` for the two ablated ones, is
`pytest -m rehearsal tests/test_rehearsal.py` (README, "The paper run, rehearsed")."""

from __future__ import annotations

import copy
import gzip
import io
import json
import os
import re
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import ROOT, as_under_the_profile, run_snakemake, tiny_evaluators
from local_hub import LocalHub

from calft import layout
from calft.config import validate
from calft.report.items import novelty_case_tables
from calft.retention.data import TINYBENCHMARKS

PAPER = yaml.safe_load((ROOT / "config.paper.yaml").read_text())
TEXT_ONLY = {"gemma-3-1b-it"}  # Gemma3ForCausalLM; the larger Gemma-3 models are multimodal
PROTOCOLS = ["qwen3-0.6b", "gemma-3-4b-it", "llama-3.2-1b-instruct", "gpt-oss-20b"]  # one model each

# Only sizes and data sources change; models, protocols, methods and the evaluation design stay.
OVERRIDES = {
    "prompts": {"train_per_family": 1},
    "targets": {"soft_max_bins": 50, "hard_max_bins": 100, "decimals": 2, "eval_decimals": 2, "eval_max_bins": 100},
    "ablations": {"construction_cost": {"decimals": [2, 3], "max_bins": [50, 100], "max_prompts": 2}},
    "training": {"hard_samples_per_prompt_per_epoch": 4, "soft_epochs": 1, "hard_epochs": 1},
    "sampling": {"num_samples": 3, "max_new_tokens": 6, "logit_kl_paths": 2, "logit_kl_exact": False},
    "retention": {"limit": 2, "batch_size": 2, "max_gen_toks": 8, "irt_parameters": None},
    "perplexity": {"max_documents": 1, "context": 64, "stride": 32},
    "transfer": {
        "open_ended": {"num_samples": 2, "max_new_tokens": 4, "max_prompts": 2},
        "mcq": {"num_samples": 2, "max_new_tokens": 12},
        "ssot": {"num_samples": 2, "max_new_tokens": 8, "open_ended_num_samples": 2, "open_ended_max_new_tokens": 8},
        "noveltybench": {"prompts_limit": 1, "generations": 2, "max_new_tokens": 8, "reward_dtype": "float32"},
    },
}


def _merged(base: dict, changes: dict) -> dict:
    merged = dict(base)
    for key, value in changes.items():
        merged[key] = _merged(base.get(key) or {}, value) if isinstance(value, dict) and value else value
    return merged


def rehearsal_config(prompts_url: str, **changes) -> dict:
    """config.paper.yaml with the OVERRIDES, NoveltyBench's prompts from `prompts_url`, and `changes`."""
    config = _merged(PAPER, _merged(OVERRIDES, {"transfer": {"noveltybench": {"prompts_url": prompts_url}}}))
    return _merged(config, changes)


def _replica_name(model: str, entry: dict) -> str:
    family = entry["tokenizer"]
    if family == "gemma3":
        return "gemma3-text" if model in TEXT_ONLY else "gemma3-multimodal"
    return family


def _tiny_benchmarks() -> dict[str, dict[str, bytes]]:
    """A hundred items of each tinyBenchmarks dataset, in its repository's layout and fields."""
    items = range(100)
    frames = {
        "mmlu": pd.DataFrame(
            {"input_formatted": [f"Question {i}? A. a B. b C. c D. d\nAnswer:" for i in items], "answer": 1}
        ),
        "hellaswag": pd.DataFrame(
            {
                "input_formatted": [f"A man walks {i}" for i in items],
                "endings": [["in.", "out.", "up.", "down."]] * 100,
                "label": "2",
            }
        ),
        "truthfulqa": pd.DataFrame(
            {
                "input_formatted": [f"Q: is {i} true?\nA:" for i in items],
                "mc2_targets": [{"choices": ["yes", "no"], "labels": [1, 0]}] * 100,
            }
        ),
        "winogrande": pd.DataFrame(
            {
                "input_formatted": [f"The cup {i} fell because the cup" for i in items],
                "sentence": [f"The cup {i} fell because _ was full." for i in items],
                "option1": "the cup",
                "option2": "the table",
                "answer": "1",
            }
        ),
        "gsm8k": pd.DataFrame(
            {
                "input_formatted": [f"Question: {i} + 1?\nAnswer:" for i in items],
                "answer": [f"so #### {i + 1}" for i in items],
            }
        ),
    }
    repositories = {}
    for task, (dataset, configuration, split) in TINYBENCHMARKS.items():
        name = configuration or "default"
        table = io.BytesIO()
        frames[task].to_parquet(table)
        card = {"configs": [{"config_name": name, "data_files": [{"split": split, "path": f"{name}/{split}.parquet"}]}]}
        readme = f"---\n{yaml.safe_dump(card)}---\n"
        repositories[dataset] = {f"{name}/{split}.parquet": table.getvalue(), "README.md": readme.encode()}
    return repositories


def _paloma(slices: list[str], split: str) -> dict[str, bytes]:
    document = json.dumps({"text": "The quick brown fox jumps over the lazy dog. " * 20}).encode() + b"\n"
    return {f"{name}/{split}/part-0.jsonl.gz": gzip.compress(document) for name in slices}


@pytest.fixture(scope="module")
def paper_hub(replica, smollm2_dir, tmp_path_factory):
    """The local hub serving the paper's twelve models at their pinned commits, NoveltyBench's
    evaluators, tinyBenchmarks and PALOMA; and a file:// copy of NoveltyBench's prompt files."""
    folder = tmp_path_factory.mktemp("paper-hub")
    similarity, reward = tiny_evaluators(folder, smollm2_dir)
    prompts = folder / "noveltybench"
    prompts.mkdir()
    for name, count in (("curated.jsonl", 100), ("wildchat-1k.jsonl", 1000)):
        extra = {"category": "Creativity"} if name == "curated.jsonl" else {}
        lines = [json.dumps({"id": i, "prompt": f"Tell me a story {i}.", **extra}) for i in range(count)]
        (prompts / name).write_text("\n".join(lines) + "\n")
    hub = LocalHub()
    commit = iter(f"{n:040x}" for n in range(1, 1000))
    for model, entry in PAPER["models"].items():
        replica_folder, _ = replica(_replica_name(model, entry))
        hub.commit(entry["source"], replica_folder, entry["revision"])
    paper = copy.deepcopy(PAPER)
    validate(paper)  # the schema's defaults filled in: the evaluators' hub ids, PALOMA's slices
    for key, files in (
        ("similarity_model", similarity),
        ("similarity_tokenizer", similarity),
        ("reward_model", reward),
    ):
        hub.commit(paper["transfer"]["noveltybench"][key], files, next(commit))
    for dataset, files in _tiny_benchmarks().items():
        hub.commit(dataset, files, next(commit), kind="dataset")
    paloma = paper["perplexity"]
    hub.commit(paloma["paloma_repository"], _paloma(paloma["slices"], paloma["split"]), next(commit), kind="dataset")
    with hub:
        yield hub, prompts.as_uri() + "/"


def _rehearse(paper_hub, folder: Path, targets: list[str], **changes) -> dict[str, int]:
    """Snakemake on the rehearsal config in `folder` (a fresh Hugging Face cache, the hub's address
    in HF_ENDPOINT): the targets, launched as under the SLURM profile. Returns the jobs run per rule."""
    hub, prompts_url = paper_hub
    (folder / "rehearsal.yaml").write_text(yaml.safe_dump(rehearsal_config(prompts_url, **changes), sort_keys=False))
    environment = {"HF_ENDPOINT": hub.url, "HF_HUB_CACHE": str(folder / "hf-cache"), "HF_HOME": str(folder / "hf")}
    saved = {key: os.environ.get(key) for key in [*environment, "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"]}
    os.environ.update(environment)
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.pop(key, None)
    try:
        cores = str(2 * len(os.sched_getaffinity(0)))
        result = run_snakemake(
            *targets,
            "--cores",
            cores,
            "--keep-going",
            *as_under_the_profile(),
            "--configfile",
            "rehearsal.yaml",
            cwd=folder,
        )
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    stats = re.search(r"Job stats:\njob\s+count\n[-\s]+\n((?:\S+\s+\d+\n)+)", result.stdout + result.stderr)
    return {rule: int(count) for rule, count in re.findall(r"^(\S+)\s+(\d+)$", stats.group(1), re.M)}


def _models_of_each_rule(folder: Path, models: list[str]) -> dict[str, set[str]]:
    """rule -> the models its jobs ran for, from the benchmark file each job writes (its path names
    the model as a folder or as the file)."""
    ran: dict[str, set[str]] = {}
    benchmarks = folder / "results" / "benchmarks"
    for path in benchmarks.rglob("*.tsv"):
        rule, *rest = path.relative_to(benchmarks).with_suffix("").parts
        ran.setdefault(rule, set()).update(set(rest) & set(models))
    return ran


@pytest.mark.slow
def test_one_model_of_each_chat_protocol_downloads_trains_samples_and_scores(paper_hub, tmp_path):
    """From an empty cache: each protocol's model downloaded at its pinned commit, tries built from
    its download marker, the soft adapter trained (torchrun over 4 gloo ranks), its samples and those
    of String Seed of Thought prompting (each protocol puts the instructions elsewhere) scored."""
    targets = [
        layout.SCORES.format(model=model, method=method, variant="", prompt_set="ood")
        for model in PROTOCOLS
        for method in ("soft", "ssot")
    ]
    jobs = _rehearse(paper_hub, tmp_path, targets, run_models=PROTOCOLS)
    assert jobs["download_hub_model"] == jobs["train_soft"] == len(PROTOCOLS) and "train_hard" not in jobs
    for model in PROTOCOLS:
        marker = json.loads((tmp_path / layout.HUB_MODEL_MARKER.format(model=model)).read_text())["config"]
        assert marker["commit"] == PAPER["models"][model]["revision"]
        scores = pd.read_parquet(tmp_path / targets[PROTOCOLS.index(model) * 2])
        assert len(scores) == 18 and scores.num_samples.eq(3).all()
    assert not list((tmp_path / "hf-cache").glob("models--*/refs/main"))  # nothing resolved `main`


@pytest.mark.rehearsal
def test_the_paper_run_at_full_breadth(paper_hub, tmp_path):
    """`all` for the twelve models, then `ablations` for the two ablated ones: every rule of `all`
    that runs per model runs for each of the twelve, and every table has a row for each."""
    models = list(PAPER["models"])
    started = time.monotonic()
    jobs = _rehearse(paper_hub, tmp_path, ["all"])
    all_minutes = (time.monotonic() - started) / 60
    per_model = {rule: ran for rule, ran in _models_of_each_rule(tmp_path, models).items() if ran}
    assert {rule: sorted(set(models) - ran) for rule, ran in per_model.items()} == dict.fromkeys(per_model, [])
    tables = tmp_path / "results" / "tables"
    cases = set(novelty_case_tables(PAPER["methods"]).values())  # Tables 11-19: a few chosen prompts
    for table in sorted(tables.glob("*.csv")):
        text = table.read_text()
        if table.stem not in cases and any(model in text for model in models):
            assert [model for model in models if model not in text] == [], table.name
    assert (tables / "index.md").exists()

    ablation_jobs = _rehearse(paper_hub, tmp_path, ["ablations"])
    minutes = (time.monotonic() - started) / 60
    ablated = tmp_path / layout.ABLATIONS
    assert sorted(path.name for path in ablated.glob("table2[456]_*.md")) and list(ablated.glob("figure14_*.png"))
    report = "\n".join(
        [
            f"rehearsal: all in {all_minutes:.1f} min, all and ablations in {minutes:.1f} min",
            "jobs per rule (all): " + json.dumps(jobs, sort_keys=True),
            "jobs per rule (ablations): " + json.dumps(ablation_jobs, sort_keys=True),
            "rules run for all twelve models: " + ", ".join(sorted(per_model)),
        ]
    )
    (ROOT / "benchmarks" / "output").mkdir(parents=True, exist_ok=True)
    (ROOT / "benchmarks" / "output" / "rehearsal.txt").write_text(report + "\n")
    print(report)
