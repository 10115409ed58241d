"""Retention (lm-eval tasks, gp-IRT) and PALOMA perplexity: math by hand, data, real lm-eval runs."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import cli_settings

from calft import artifacts
from calft.cli import main
from calft.errors import UserError
from calft.modeling.loader import load
from calft.modeling.settings import ModelEntry
from calft.retention import data as eval_data
from calft.retention import irt, scoring, tasks
from calft.retention.settings import Retention

MODEL_CONFIG = {"source": "embedded", "tokenizer": "smollm2", "terminator": "<|im_end|>", "dtype": "float32"}
MODEL_ENTRY = ModelEntry.from_dict(MODEL_CONFIG)


# ---------------------------------------------------------------------------------------------
# gp-IRT


def _bundle(**overrides) -> irt.Bundle:
    """Six items in one scenario with subscenarios a (items 0-3) and b (4-5); items 0, 1, 4 seen.
    A = 1 and B = 0 everywhere, so theta's MLE makes p = mean(responses) on every item."""
    raw = {
        "seen_examples": [0, 1, 4],
        "examples_weights": {"s": [0.5, 0.25, 0.25]},
        "irt_parameters": {"A": np.ones((1, 1, 6)), "B": np.zeros((1, 1, 6))},
        "optimal_lambdas": {"s": 0.4},
        "scenarios_position": {"s": list(range(6))},
        "subscenarios_position": {"s": {"a": [0, 1, 2, 3], "b": [4, 5]}},
    }
    return irt.Bundle.from_release(raw | overrides)


def test_gp_irt_by_hand():
    # balance weights: 6/(2*4) = 0.75 on subscenario a, 6/(2*2) = 1.5 on b; p = 2/3 on every item
    # p-IRT = 0.5 * mean(0.75*1, 0.75*0, 1.5*1) + 0.5 * mean(0.75*2/3, 0.75*2/3, 1.5*2/3) = 0.375 + 1/3
    # IRT = 0.5*1 + 0.25*0 + 0.25*1 = 0.75; gp-IRT = 0.4*0.75 + 0.6*(0.375 + 1/3) = 0.725
    bundle = _bundle()
    np.testing.assert_allclose(irt.balance_weights(bundle), [0.75] * 4 + [1.5] * 2)
    estimates = irt.estimate(bundle, "s", np.array([1.0, 0.0, 1.0]))
    assert estimates["irt"] == pytest.approx(0.75)
    assert estimates["pirt"] == pytest.approx(0.375 + 1 / 3, abs=1e-6)
    assert estimates["gpirt"] == pytest.approx(0.725, abs=1e-6)


def test_gp_irt_takes_each_scenarios_own_slice_of_the_seen_items():
    raw = {
        "seen_examples": [0, 1, 4, 5],
        "examples_weights": {"s": [0.5, 0.5], "t": [0.5, 0.5]},
        "irt_parameters": {"A": np.ones((1, 1, 8)), "B": np.zeros((1, 1, 8))},
        "optimal_lambdas": {"s": 1.0, "t": 1.0},
        "scenarios_position": {"s": [0, 1, 2, 3], "t": [4, 5, 6, 7]},
        "subscenarios_position": {"s": {"x": [0, 1, 2, 3]}, "t": {"y": [4, 5, 6, 7]}},
    }
    bundle = irt.Bundle.from_release(raw)
    np.testing.assert_array_equal(bundle.seen_of("t", 2), [4, 5])
    assert irt.estimate(bundle, "t", np.array([1.0, 0.0]))["gpirt"] == pytest.approx(0.5)


def test_summary_reports_gp_irt_only_for_complete_tinybenchmarks_tasks():
    bundle = _bundle(
        seen_examples=list(range(100)),
        examples_weights={"mmlu": np.full(100, 0.01)},
        irt_parameters={"A": np.ones((1, 1, 200)), "B": np.zeros((1, 1, 200))},
        optimal_lambdas={"mmlu": 0.5},
        scenarios_position={"mmlu": list(range(200))},
        subscenarios_position={"mmlu": {"all": list(range(200))}},
    )
    rows = [
        {"task": task, "kind": "mmlu", "metric": "acc", "doc_id": i, "score": float(i % 2)}
        for task, n in (("mmlu", 100), ("multiple_choice", 100))
        for i in range(n)
    ]
    summary = scoring.summarize(pd.DataFrame(rows), {"mmlu": bundle}).set_index("task")
    assert summary.loc["mmlu", "accuracy"] == 0.5
    assert summary.loc["mmlu", "irt"] == pytest.approx(0.5)
    assert math.isnan(summary.loc["multiple_choice", "gpirt"])  # a probe is not an IRT scenario


def _release(tmp_path, content) -> tuple[str, str]:
    """A release file: its file:// URL and its sha256."""
    path = tmp_path / f"release-{len(list(tmp_path.glob('release-*')))}.pkl"
    path.write_bytes(pickle.dumps(content))
    return path.as_uri(), hashlib.sha256(path.read_bytes()).hexdigest()


class _RunsCode:
    """Unpickling this runs numpy's own `runstring`: code execution through an allowed-looking global."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        from numpy.testing._private.utils import runstring

        return runstring, (f"open({str(self.marker)!r}, 'w').close()", {})


def test_irt_release_becomes_an_archive_and_code_in_it_never_runs(tmp_path):
    raw = {
        "seen_examples": np.arange(3),
        "examples_weights": {"s": np.ones(3)},
        "irt_parameters": {"A": np.ones((1, 1, 6)), "B": np.zeros((1, 1, 6))},
        "optimal_lambdas": {"s": np.float64(0.4)},
        "scenarios_position": {"s": list(range(6))},
        "subscenarios_position": {"s": {"a": np.arange(6)}},
    }
    url, digest = _release(tmp_path, {"mmlu": raw, "lb": raw})
    assert eval_data.fetch_irt_parameters(url, tmp_path / "irt.npz", digest) == digest
    bundle = eval_data.load_bundles(tmp_path / "irt.npz")["lb"]
    expected = irt.Bundle.from_release(raw)
    assert bundle.size == 6 and bundle.optimal_lambdas == {"s": 0.4}
    assert irt.estimate(bundle, "s", np.array([1.0, 0.0, 1.0])) == irt.estimate(
        expected, "s", np.array([1.0, 0.0, 1.0])
    )

    marker = tmp_path / "code-ran"
    for content, refusal in (
        ({"mmlu": _RunsCode(marker), "lb": raw}, "numpy.testing._private.utils.runstring"),
        ({"mmlu": print, "lb": raw}, "builtins.print"),
        ({"mmlu": np.array([{"x": 1}], dtype=object), "lb": raw}, "array of Python objects"),
    ):
        url, digest = _release(tmp_path, content)
        with pytest.raises(UserError, match=re.escape(refusal)):
            eval_data.fetch_irt_parameters(url, tmp_path / "evil.npz", digest)
        assert not marker.exists() and not (tmp_path / "evil.npz").exists()


def test_the_irt_download_is_refused_unless_its_checksum_is_recorded_and_matches(tmp_path):
    url, digest = _release(tmp_path, {"mmlu": {}, "lb": {}})
    with pytest.raises(UserError, match=f"retention.irt_sha256 is not set.*has sha256 {digest}"):
        eval_data.fetch_irt_parameters(url, tmp_path / "irt.npz", None)
    with pytest.raises(UserError, match="differs from retention.irt_sha256"):
        eval_data.fetch_irt_parameters(url, tmp_path / "irt.npz", "0" * 64)
    assert list(tmp_path.iterdir()) == [Path(url.removeprefix("file://"))]


# ---------------------------------------------------------------------------------------------
# GSM8K answers


@pytest.mark.parametrize(
    "generation, strict, flexible",
    [
        ("3 + 4 = 7\n#### 7", "7", "7"),
        ("so 1,234 in total\n#### 1,234\n\n", "1234", "1234"),
        ("#### 12.50", "12.5", "12.5"),
        ("#### -3.0 dollars", "-3", "-3"),
        ("#### 3 or 4", None, "4"),
        ("The answer is 42.", None, "42"),
        ("no number at all", None, None),
        ("####\n5", "5", "5"),  # the answer on the line after the marker
        ("####\n\n 5 apples\n6", "5", "6"),
        ("####", None, None),
        ("#### 1234,567", None, "567"),  # not a thousands grouping: two numbers
        ("total 12,345,678.5", None, "12345678.5"),
    ],
)
def test_gsm8k_strict_and_flexible(generation, strict, flexible):
    assert scoring.gsm8k_strict(generation) == strict
    assert scoring.gsm8k_flexible(generation) == flexible


def test_gsm8k_gold_is_after_the_last_marker():
    assert scoring.gsm8k_gold("48/2 = 24\n#### 24") == "24"
    assert scoring.gsm8k_gold("#### 1\nmore #### 1,000") == "1000"


def test_winogrande_contexts_cut_the_gold_option_from_the_prompt():
    doc = {
        "sentence": "The cup fell off the table because _ was slippery.",
        "option1": "the cup",
        "option2": "the table",
        "answer": "2",
        "input_formatted": "Shots.\n\nThe cup fell off the table because the table",
    }
    assert scoring.winogrande_options(doc) == [
        "Shots.\n\nThe cup fell off the table because the cup",
        "Shots.\n\nThe cup fell off the table because the table",
    ]
    assert scoring.winogrande_continuation(doc) == "was slippery."
    assert scoring.winogrande_gold(doc) == 1


# ---------------------------------------------------------------------------------------------
# Offline data


def test_offline_probes_build_deterministically_with_correct_answers():
    first, again, other = (eval_data.arithmetic_probe(30, seed) for seed in (11, 11, 12))
    pd.testing.assert_frame_equal(first, again)
    assert not first.question.equals(other.question)
    for answer in first.answer:
        work, final = answer.split("\n#### ")
        assert eval(work.split(" = ")[0].replace("/", "//")) == int(final) == int(work.split(" = ")[1])
    assert all(
        p.endswith(f"Question: {q}\nAnswer:") and p.count("####") == 3
        for p, q in zip(first.input_formatted, first.question)
    )

    choices = eval_data.choice_probe(60, 11)
    pd.testing.assert_frame_equal(choices, eval_data.choice_probe(60, 11))
    for row in choices.itertuples():
        correct, options = row.choices[row.answer], list(row.choices)
        assert len(set(options)) == 4
        if row.question.startswith("What is"):
            a, b = map(int, row.question[len("What is ") : -1].split(" + "))
            assert correct == str(a + b)
        elif "largest" in row.question:
            assert int(correct) == max(map(int, options))
        else:
            assert correct == min(options)
    assert set(choices.answer) == {0, 1, 2, 3}


def test_offline_slices_round_trip_through_palomas_layout(tmp_path):
    slices = eval_data.offline_slices(max_documents=5, max_chars=4000)
    assert slices == eval_data.offline_slices(max_documents=5, max_chars=4000)
    assert set(slices) == {"pydoc_topics", "stdlib_docstrings"}
    for name, documents in slices.items():
        assert 0 < len(documents) <= 5 and all(0 < len(d["text"]) <= 4000 for d in documents)
        eval_data.write_slice(tmp_path / name, documents)
        with gzip.open(tmp_path / name / "test" / "part-0000.jsonl.gz", "rt", encoding="utf-8") as stream:
            assert [json.loads(line) for line in stream] == documents
    assert (tmp_path / "pydoc_topics" / "test" / "part-0000.jsonl.gz").exists()


# ---------------------------------------------------------------------------------------------
# Perplexity windows and bits per byte


@pytest.mark.parametrize("length", [1, 2, 7, 8, 9, 33, 100])
def test_strided_windows_score_every_token_once_with_enough_context(length):
    from calft.retention.harness import strided_windows

    context, stride = 8, 3
    windows = strided_windows(length, context, stride)
    scored = [t for _, end, first in windows for t in range(first, end)]
    assert scored == list(range(1, length))
    for begin, end, first in windows:
        assert end - begin <= context
        assert begin == 0 or first - begin >= context - stride


def test_bits_per_byte_is_nll_over_ln2_bytes_and_one_forward_for_short_texts(tiny_model_dir, tmp_path):
    import torch

    from calft.retention import perplexity
    from calft.retention.harness import CalftLM

    text = "The quick brown fox jumps over the lazy dog. Ünïcödé costs more bytes than characters."
    eval_data.write_slice(tmp_path / "known", [{"text": text}, {"text": "   "}])
    lm = CalftLM(load(str(tiny_model_dir), MODEL_ENTRY), batch_size=1, context=256, stride=128)
    table = perplexity.evaluate_slices(lm, tmp_path, ["known"], "test", None).set_index("slice")
    ids = lm.document_ids(text)
    with torch.no_grad():
        logits = lm.model(torch.tensor([ids])).logits[0, :-1]
    full = torch.nn.functional.cross_entropy(logits.float(), torch.tensor(ids[1:]), reduction="sum").item()
    row = table.loc["known"]
    assert row.documents == 1  # the blank document is skipped
    assert row.tokens == len(ids) - 1 and row.bytes == len(text.encode("utf-8")) > len(text)
    assert row.nll == pytest.approx(full, rel=1e-5)
    assert row.bits_per_byte == pytest.approx(full / (math.log(2) * len(text.encode("utf-8"))), rel=1e-5)
    assert row.perplexity == pytest.approx(math.exp(full / (len(ids) - 1)), rel=1e-5)

    lm.context, lm.stride = 8, 4  # strided: every token still scored once, with less context
    strided = lm.document_nll(ids)
    assert math.isfinite(strided) and strided != pytest.approx(full, rel=1e-6)
    lm.bos = 0  # a model that expects BOS gets exactly one, and its first text token is scored
    assert lm.document_ids(text)[0] == 0 and lm.document_ids(text)[1:] == ids


# ---------------------------------------------------------------------------------------------
# Real lm-eval runs


def _tinybenchmarks_shaped(folder):
    """Two items of each tinyBenchmarks task in that dataset's schema."""
    folder.mkdir()
    mmlu = [{"input_formatted": f"Question {i}?\nA. a\nB. b\nC. c\nD. d\nAnswer:", "answer": i} for i in range(2)]
    hellaswag = [
        {"input_formatted": "A man sits down. He", "endings": ["eats [title] lunch.", "runs  fast."], "label": str(i)}
        for i in range(2)
    ]
    truthfulqa = [
        {
            "input_formatted": "Q: Is the sky green?\nA:",
            "mc2_targets": {"choices": ["No.", "Yes.", "Only at night."], "labels": [1, 0, 0]},
        }
        for _ in range(2)
    ]
    winogrande = [
        {
            "sentence": "The cup fell off the table because _ was slippery.",
            "option1": "the cup",
            "option2": "the table",
            "answer": str(i + 1),
            "input_formatted": "The cup fell off the table because " + ["the cup", "the table"][i],
        }
        for i in range(2)
    ]
    gsm8k = [{"input_formatted": "Question: What is 2 + 2?\nAnswer:", "answer": "2 + 2 = 4\n#### 4"}] * 2
    for name, rows in (
        ("mmlu", mmlu),
        ("hellaswag", hellaswag),
        ("truthfulqa", truthfulqa),
        ("winogrande", winogrande),
        ("gsm8k", gsm8k),
    ):
        pd.DataFrame(rows).to_parquet(folder / f"{name}.parquet")
    return folder


def test_every_tinybenchmarks_task_kind_runs_through_lm_eval(tiny_model_dir, tmp_path):
    from calft.retention.harness import CalftLM

    data = _tinybenchmarks_shaped(tmp_path / "tiny")
    lm = CalftLM(load(str(tiny_model_dir), MODEL_ENTRY), batch_size=2, max_gen_toks=8)
    examples = tasks.evaluate_tasks(lm, data, Retention.from_dict({"suite": "tinybenchmarks", "max_gen_toks": 8}))
    counts = examples.groupby(["task", "metric"]).size().to_dict()
    assert counts == {
        ("gsm8k", "flexible"): 2,
        ("gsm8k", "strict"): 2,
        ("hellaswag", "acc_norm"): 2,
        ("mmlu", "acc"): 2,
        ("truthfulqa", "acc"): 2,
        ("winogrande", "acc"): 2,
    }
    assert examples.score.between(0, 1).all()
    truthful = examples[examples.task == "truthfulqa"].iloc[0]
    probabilities = np.exp(truthful.loglikelihoods) / np.exp(truthful.loglikelihoods).sum()
    assert truthful.score == pytest.approx(probabilities[0]) and 0 < truthful.score < 1
    assert all(
        len(ll) == n
        for ll, n in zip(
            examples[examples.kind != "gsm8k"].loglikelihoods,
            examples[examples.kind != "gsm8k"].kind.map({"mmlu": 4, "hellaswag": 2, "truthfulqa": 3, "winogrande": 2}),
        )
    )


def test_tinybenchmarks_fetch_reads_hub_layout_mirrors_and_checks_row_counts(tmp_path):
    """The hub code path, on local mirrors laid out like the hub repositories (configs in README)."""
    mirror = tmp_path / "mirror"
    for task, (dataset, configuration, split) in eval_data.TINYBENCHMARKS.items():
        folder = mirror / dataset
        name = configuration or "default"
        (folder / name).mkdir(parents=True)
        pd.DataFrame({"input_formatted": [f"{task} {i}" for i in range(100)], "answer": 0}).to_parquet(
            folder / name / f"{split}.parquet"
        )
        (folder / "README.md").write_text(
            f"---\nconfigs:\n- config_name: {name}\n  data_files:\n"
            f"  - split: {split}\n    path: {name}/{split}.parquet\n---\n"
        )
    output = tmp_path / "tinybenchmarks"
    assert eval_data.fetch_tinybenchmarks(output, str(mirror)) == {task: "local" for task in eval_data.TINYBENCHMARKS}
    assert sorted(p.stem for p in output.glob("*.parquet")) == sorted(eval_data.TINYBENCHMARKS)
    assert pd.read_parquet(output / "gsm8k.parquet").input_formatted[99] == "gsm8k 99"

    short = mirror / "tinyBenchmarks" / "tinyGSM8k" / "main" / "test.parquet"
    pd.read_parquet(short).head(99).to_parquet(short)
    with pytest.raises(UserError, match="has 99 rows"):
        eval_data.fetch_tinybenchmarks(tmp_path / "again", str(mirror))


def test_retention_refuses_a_prepared_data_folder_whose_files_changed(tmp_path, capsys):
    probes = tmp_path / "probes"
    assert main(["retention-data", *cli_settings(suite="offline", probe_items=2), "--output", str(probes)]) == 0
    recorded = json.loads((probes / artifacts.RECORD).read_text())["files"]
    assert sorted(recorded) == ["arithmetic.parquet", "multiple_choice.parquet"]
    (probes / ".snakemake_timestamp").write_text("")  # Snakemake's marker is not data
    artifacts.verify_data(probes, False, "retention")
    pd.read_parquet(probes / "arithmetic.parquet").head(1).to_parquet(probes / "arithmetic.parquet")
    assert (
        main(
            [
                "retention",
                *cli_settings(model=MODEL_CONFIG, retention={"suite": "offline"}),
                "--model-dir",
                "m",
                "--data-dir",
                str(probes),
                "--examples",
                str(tmp_path / "e"),
                "--output",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "no longer holds the files recorded" in capsys.readouterr().err


def _hub_dataset(cache, repository: str, files: dict[str, bytes], commit: str) -> None:
    """A dataset repository as the Hugging Face cache holds it: one snapshot, `main` pointing at it."""
    root = cache / f"datasets--{repository.replace('/', '--')}"
    for name, content in files.items():
        (root / "snapshots" / commit / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "snapshots" / commit / name).write_bytes(content)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(commit)


def _offline_calft(cache, *arguments) -> subprocess.CompletedProcess:
    """calft in a fresh process whose Hugging Face hub is the given cache, offline (as on a node
    without internet access; huggingface_hub reads these variables when imported)."""
    env = os.environ | {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "calft.cli", *arguments], env=env, capture_output=True, text=True)


def test_tinybenchmarks_and_paloma_come_from_hub_snapshots_whose_commits_are_recorded(tmp_path):
    import io

    cache = tmp_path / "hub"
    for task, (dataset, configuration, split) in eval_data.TINYBENCHMARKS.items():
        name = configuration or "default"
        table = io.BytesIO()
        pd.DataFrame({"input_formatted": [f"{task} {i}" for i in range(100)], "answer": 0}).to_parquet(table)
        readme = (
            f"---\nconfigs:\n- config_name: {name}\n  data_files:\n  - split: {split}\n"
            f"    path: {name}/{split}.parquet\n---\n"
        )
        _hub_dataset(
            cache,
            dataset,
            {f"{name}/{split}.parquet": table.getvalue(), "README.md": readme.encode()},
            f"{task[:4]:0<4}" + "a" * 36,
        )
    result = _offline_calft(
        cache, "retention-data", *cli_settings(suite="tinybenchmarks"), "--output", str(tmp_path / "tiny")
    )
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "tiny" / artifacts.RECORD).read_text())
    assert record["revisions"]["gsm8k"] == "gsm8" + "a" * 36 and sorted(record["files"]) == sorted(
        f"{task}.parquet" for task in eval_data.TINYBENCHMARKS
    )

    slices = {"c4_en": b'{"text": "a document"}\n', "ptb": b'{"text": "another"}\n'}
    _hub_dataset(
        cache,
        "allenai/paloma",
        {f"{name}/test/part.jsonl": text for name, text in slices.items()}
        | {"mc4/test/part.jsonl": b'{"text": "not asked for"}\n'},
        "b" * 40,
    )
    result = _offline_calft(
        cache, "perplexity-data", *cli_settings(slices=list(slices)), "--output", str(tmp_path / "paloma")
    )
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "paloma" / artifacts.RECORD).read_text())
    assert record["revisions"] == "b" * 40 and sorted(record["files"]) == [
        "c4_en/test/part.jsonl",
        "ptb/test/part.jsonl",
    ]
    result = _offline_calft(
        cache, "perplexity-data", *cli_settings(paloma_revision="c" * 40), "--output", str(tmp_path / "missing")
    )
    assert result.returncode == 2 and "cannot fetch the dataset allenai/paloma at revision cccc" in result.stderr


# -- the reference's scored token ids, family by family ------------------------------------------


def _reference_rendering(tokenizer, entry: dict, prompt: str) -> str:
    """The reference's prompt (spec §13): the chat template over one user message, thinking off,
    then the generation prefix; the date its template prints fixed to the entry's."""
    template = tokenizer.chat_template.replace("strftime_now('%Y-%m-%d')", "'2026-01-01'").replace(
        "strftime_now('%d %b %Y')", "'01 Jan 2026'"
    )
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}],
        chat_template=template,
        tokenize=False,
        add_generation_prompt=True,
        **entry.get("chat_template_kwargs", {}),
    )
    return rendered + (entry.get("generation_prefix") or "")


def _reference_requests(tokenizer, entry: dict, data: Path) -> tuple[set, set]:
    """Independently of calft's task code: the (context ids, continuation ids) the reference scores
    for the first item of each multiple-choice task, and the prompt ids it generates from for GSM8K.
    Both texts are tokenized with the tokenizer's default special tokens; a continuation gets a space
    first unless its prompt ends in whitespace; its ids are those after the prompt's."""

    def pair(prompt, continuation):
        rendered = _reference_rendering(tokenizer, entry, prompt)
        context = tokenizer(rendered).input_ids
        return tuple(context), tuple(tokenizer(rendered + continuation).input_ids[len(context) :])

    def space(prompt, text):
        return text if prompt[-1:] in (" ", "\n", "\t") or text[:1] in (" ", "\n", "\t") else " " + text

    first = {
        name: pd.read_parquet(data / f"{name}.parquet").iloc[0]
        for name in ("mmlu", "hellaswag", "truthfulqa", "winogrande", "gsm8k")
    }
    scored = set()
    mmlu = first["mmlu"].input_formatted
    scored |= {pair(mmlu, space(mmlu, letter)) for letter in "ABCD"}
    swag = first["hellaswag"]
    for ending in swag.endings:
        cleaned = re.sub(r"\[.*?\]", "", ending.strip().replace(" [title]", ". ")).replace("  ", " ")
        scored.add(pair(swag.input_formatted, space(swag.input_formatted, cleaned)))
    truthful = first["truthfulqa"]
    scored |= {
        pair(truthful.input_formatted, space(truthful.input_formatted, choice))
        for choice in truthful.mc2_targets["choices"]
    }
    wino = first["winogrande"]
    options = (wino.option1, wino.option2)
    cut = next(option for option in sorted(options, key=len, reverse=True) if wino.input_formatted.endswith(option))
    prefix = wino.input_formatted[: -len(cut)]
    ending = wino.sentence.split("_", 1)[1].strip()
    scored |= {pair(prefix + option, space(prefix + option, ending)) for option in options}
    generated = {tuple(tokenizer(_reference_rendering(tokenizer, entry, first["gsm8k"].input_formatted)).input_ids)}
    return scored, generated


@pytest.mark.parametrize("name", ["qwen3", "gemma3-text", "llama3", "gpt-oss"])
def test_retention_scores_the_reference_token_ids_for_every_family(replica, tmp_path, name):
    import torch
    from conftest import PAPER_SETTINGS
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoTokenizer

    from calft.retention.harness import CalftLM

    class Recording(CalftLM):
        """Records the token ids lm-eval hands the model (scored pairs and generation prompts), and
        checks that a batch's shared prefix computed once changes neither logits nor generations."""

        def _loglikelihood_tokens(self, requests, *args, **kwargs):
            self.scored |= {(tuple(context), tuple(continuation)) for _, context, continuation in requests}
            return super()._loglikelihood_tokens(requests, *args, **kwargs)

        def _model_call(self, inps, *args, **kwargs):
            logits = super()._model_call(inps, *args, **kwargs)
            assert torch.allclose(logits, HFLM._model_call(self, inps, *args, **kwargs), atol=1e-4)
            return logits

        def _model_generate(self, context, *args, **kwargs):
            generated = super()._model_generate(context, *args, **kwargs)
            assert torch.equal(generated, HFLM._model_generate(self, context, *args, **kwargs))
            return generated

        def tok_batch_encode(self, strings, *args, **kwargs):
            ids, mask = super().tok_batch_encode(strings, *args, **kwargs)
            self.generated |= {tuple(row[keep.bool()].tolist()) for row, keep in zip(ids, mask)}
            return ids, mask

    folder, entry = replica(name)
    entry = entry | PAPER_SETTINGS[name]
    data = _tinybenchmarks_shaped(tmp_path / "tiny")
    settings = Retention.from_dict({"suite": "tinybenchmarks", "limit": 1, "max_gen_toks": 2, "batch_size": 4})
    lm = Recording(load(str(folder), ModelEntry.from_dict(entry)), batch_size=4, max_gen_toks=2)
    lm.scored, lm.generated = set(), set()
    tasks.evaluate_tasks(lm, data, settings)
    scored, generated = _reference_requests(AutoTokenizer.from_pretrained(folder), entry, data)
    assert lm.scored == scored and lm.generated == generated
    bos = lm.tokenizer.bos_token_id
    assert (list(next(iter(generated))[:2]) == [bos, bos]) == (name in ("gemma3-text", "llama3"))


def test_a_batchs_shared_prefix_computed_once_changes_no_score_and_no_generation(tiny_model_dir):
    """Rows that begin alike (few-shot examples) and differ in length: the shared-prefix logits equal
    lm-eval's plain forward, and greedy generation from left-padded contexts is unchanged."""
    import torch
    from lm_eval.models.huggingface import HFLM

    from calft.retention.harness import CalftLM

    lm = CalftLM(load(str(tiny_model_dir), MODEL_ENTRY), batch_size=3, max_gen_toks=6)
    shots = "Question: 2 + 3?\nAnswer: 5\n\nQuestion: 7 - 4?\nAnswer: 3\n\nQuestion: "
    contexts = [shots + question for question in ("1 + 1?\nAnswer:", "10 * 12 + 3?\nAnswer:", "9 - 8?\nAnswer:")]
    ids, mask = lm.tok_batch_encode(contexts)
    assert len(set(mask.sum(dim=1).tolist())) > 1  # left padding in the batch
    options = {"max_length": ids.shape[1] + 6, "stop": ["\n\n"], "attention_mask": mask, "do_sample": False}
    assert torch.equal(lm._model_generate(ids, **options), HFLM._model_generate(lm, ids, **options))
    scored = torch.nn.utils.rnn.pad_sequence([row[keep.bool()] for row, keep in zip(ids, mask)], batch_first=True)
    assert torch.allclose(lm._model_call(scored), HFLM._model_call(lm, scored), atol=1e-4)


@pytest.mark.parametrize(
    "choice_format, scored", [("reference", [" A", " B", " C", " D"]), ("chat", ["\nA", "\nB", "\nC", "\nD"])]
)
def test_choice_formats_score_these_continuations(tiny_model_dir, tmp_path, choice_format, scored):
    """SmolLM2's rendered prompt ends in "assistant\n": the reference scores " A" after it; lm-eval's
    chat convention scores "A" with the newline moved out of the prompt in front of it."""
    from lm_eval import simple_evaluate

    from calft.retention.harness import CalftLM

    class Recording(CalftLM):
        def _loglikelihood_tokens(self, requests, *args, **kwargs):
            self.continuations = [self.tokenizer.decode(continuation) for _, _, continuation in requests]
            return super()._loglikelihood_tokens(requests, *args, **kwargs)

    data = _tinybenchmarks_shaped(tmp_path / "tiny")
    lm = Recording(load(str(tiny_model_dir), MODEL_ENTRY), batch_size=4, choice_format=choice_format)
    config = tasks.task_config("mmlu", "mmlu", data / "mmlu.parquet", 8, choice_format)
    simple_evaluate(model=lm, tasks=[config], limit=1, apply_chat_template=True, bootstrap_iters=0)
    assert lm.continuations == scored


def test_reference_choices_split_prompt_and_continuation_where_the_reference_does(tiny_model_dir):
    """Prompt + continuation tokenized together, split after the prompt's own token count: where
    SmolLM2 merges the prompt's trailing space with the continuation ('Answer: ' + 'A' -> 'ĠA'), the
    merged token is context, as in the reference, not the lone 'Ġ' of the prompt tokenized alone."""
    from calft.retention.harness import CalftLM

    lm = CalftLM(load(str(tiny_model_dir), MODEL_ENTRY), batch_size=1)
    tokenizer = lm.tokenizer

    def reference(prompt: str, continuation: str) -> tuple[list[int], list[int]]:
        whole = tokenizer(prompt + continuation, add_special_tokens=False).input_ids
        alone = tokenizer(prompt, add_special_tokens=False).input_ids
        return whole[: len(alone)], whole[len(alone) :]

    for prompt, continuation in (("Answer: ", "A"), ("Answer:", " A"), ("The sum is ", "12"), ("x\n", " B")):
        assert lm._encode_pair(prompt, continuation) == reference(prompt, continuation)
    context, _ = lm._encode_pair("Answer: ", "A")
    assert context != tokenizer("Answer: ", add_special_tokens=False).input_ids  # the merge across the boundary


def test_a_prompt_ending_in_a_space_gives_a_merged_space_digit_token_to_the_context(tiny_model_dir):
    """A GPT-2 style tokenizer keeps a space with the digits after it (' 1' and ' 19' are tokens): for
    'The sum is ' + '1987' the reference scores the tokens after the first len(tokenize('The sum is '))
    of tokenize('The sum is 1987'), which are ['The', 'Ġsum', 'Ġis', 'Ġ19', '87']: only '87'."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from calft.retention.harness import CalftLM

    corpus = [f"The sum is {n} and {n + 7} more" for n in range(2000)]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # GPT-2's split: ' ?\\p{N}+'
    bpe.train_from_iterator(
        corpus, trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    )
    merging = PreTrainedTokenizerFast(tokenizer_object=bpe)
    assert merging.tokenize(" 1") == ["Ġ1"] and merging.tokenize("The sum is ")[-1] == "Ġ"

    def reference(prompt: str, continuation: str) -> tuple[list[int], list[int]]:
        whole = merging(prompt + continuation, add_special_tokens=False).input_ids
        alone = merging(prompt, add_special_tokens=False).input_ids
        return whole[: len(alone)], whole[len(alone) :]

    lm = CalftLM(load(str(tiny_model_dir), MODEL_ENTRY), batch_size=1)
    lm.tokenizer = merging
    context, continuation = lm._encode_pair("The sum is ", "1987")
    assert (context, continuation) == reference("The sum is ", "1987")
    assert merging.convert_ids_to_tokens(continuation) == ["87"] and merging.convert_ids_to_tokens(context)[-1] == "Ġ19"
    assert lm._encode_pair("The sum is", " 1987") == reference("The sum is", " 1987")  # no merge: the same split
