"""Adapters to publish: the card and config of every trained adapter, the `release` target's metrics,
and a script without calft that loads a calft adapter and samples with the documented prompt format."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys

import pytest
from conftest import run_snakemake

pytestmark = [pytest.mark.slow, pytest.mark.model]


@pytest.fixture(scope="module")
def released(local_micro_run):
    _, work = local_micro_run
    run_snakemake("release", "--cores", "2", "--configfile", "micro.yaml", cwd=work)
    return work


def test_a_trained_adapter_names_its_hub_base_and_is_readable_by_all(local_micro_run):
    _, work = local_micro_run
    adapter = work / "results" / "smol" / "soft" / "adapter"
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert config["revision"] is None  # the embedded GGUF is no hub commit
    for path in adapter.iterdir():
        assert path.stat().st_mode & stat.S_IROTH, path.name
    card = (adapter / "README.md").read_text()
    assert card.startswith("---\nbase_model: HuggingFaceTB/SmolLM2-135M-Instruct\n")
    assert "terminator: `<|im_end|>`" in card and "Not evaluated when this card was written" in card
    from calft import artifacts

    steps = artifacts.read_table(work / "results" / "smol" / "soft" / "train_log.parquet", "train_log").num_rows
    assert f"| steps | {steps} (" in card and "global batch 4 |" in card


def test_the_release_card_states_the_headline_metrics_of_the_adapter_and_the_base(released):
    from calft import artifacts
    from calft.metrics import headline

    card = (released / "results" / "release" / "smol" / "hard" / "README.md").read_text()
    for method, who in (("hard", "this adapter"), ("base", "base model")):
        scores = artifacts.read_table(released / "results" / "smol" / method / "scores" / "ood.parquet", "scores")
        logit_kl = released / "results" / "smol" / method / "logit_kl" / "ood.parquet"
        values = headline(scores.to_pandas()) | headline(artifacts.read_table(logit_kl, "logit_kl").to_pandas())
        row = next(line for line in card.splitlines() if line.startswith(f"| ood | {who} |"))
        cells = [cell.strip() for cell in row.strip("|").split("|")][2:]
        header = next(line for line in card.splitlines() if line.startswith("| prompt set | model |"))
        labels = [cell.strip() for cell in header.strip("|").split("|")][2:]
        from calft.metrics import METRICS

        by_label = {METRICS[name].label: value for name, value in values.items()}
        for label, cell in zip(labels, cells):
            expected = by_label.get(label)
            assert cell == ("—" if expected is None else f"{expected:.4g}"), (who, label)
    assert "base model" in card and "this adapter" in card


def test_a_released_adapter_loads_and_samples_in_a_script_without_calft(released, tiny_model_dir):
    """The card's own script, with the base model's hub id pointed at the local folder (no hub here)."""
    from conftest import SMOL_ENTRY
    from transformers import AutoTokenizer

    from calft.modeling.chat import ChatFormat, render
    from calft.modeling.settings import ModelEntry

    folder = released / "results" / "release" / "smol" / "soft"
    card = (folder / "README.md").read_text()
    script = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    assert "calft" not in script
    script = script.replace("'HuggingFaceTB/SmolLM2-135M-Instruct'", repr(str(tiny_model_dir)))
    script = script.replace('ADAPTER = "."', f"ADAPTER = {str(folder)!r}")
    script += "print(repr(text))\n"
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=folder)
    assert run.returncode == 0, run.stderr[-2000:]
    answers_line, text_line = run.stdout.strip().splitlines()[-2:]
    answers = eval(answers_line)  # noqa: S307 - the script's own printed list
    assert len(answers) == 8 and all(isinstance(answer, str) for answer in answers)
    prompt = re.search(r"prompt = '(.*)'", script).group(1)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert eval(text_line) == render(tokenizer, prompt, ChatFormat.from_entry(ModelEntry.from_dict(SMOL_ENTRY)))  # noqa: S307
