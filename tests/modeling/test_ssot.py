"""String Seed of Thought's instructions as a setting: files the config names (calft's wording the
default), read as the reference reads its own (whitespace stripped), recorded by checksum, checked
before any job runs, and never two wordings in one report."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from calft import artifacts
from calft.config import ConfigError, validate
from calft.errors import UserError
from calft.modeling import ssot
from calft.report import records


def test_each_task_and_protocol_reads_its_own_file_and_calft_ships_all_four():
    assert [ssot.role(protocol, open_ended) for protocol in ("plain", "harmony") for open_ended in (False, True)] == [
        "numeric",
        "open_ended",
        "numeric_harmony",
        "open_ended_harmony",
    ]
    texts = {name: ssot.read(ssot.instruction_file({}, name), name).text for name in ssot.ROLES}
    assert len(set(texts.values())) == 4 and all(len(text) > 500 for text in texts.values())
    assert texts["numeric"].endswith("<answer>\n...\n</answer>") and "developer" in texts["numeric_harmony"]
    assert ssot.instruction_file({"numeric": "mine.txt"}, "numeric") == "mine.txt"


def test_a_supplied_instruction_is_its_text_stripped_and_its_checksum_is_recorded(tmp_path):
    path = tmp_path / "numeric.txt"
    path.write_text("\n  Seed first, then <answer>x</answer>.  \n\n")
    instruction = ssot.job_instruction(True, str(path), "plain")
    assert instruction.text == "Seed first, then <answer>x</answer>."
    assert instruction.record() == {
        "role": "numeric",
        "path": str(path),
        "sha256": hashlib.sha256(b"Seed first, then <answer>x</answer>.").hexdigest(),
    }
    assert ssot.job_instruction(False, None, "plain") is None
    with pytest.raises(UserError, match="needs --ssot-instruction: the file of the instruction 'open_ended_harmony'"):
        ssot.job_instruction(True, None, "harmony", open_ended=True)
    with pytest.raises(UserError, match="not direct prompting"):
        ssot.job_instruction(False, str(path), "plain")


def test_a_missing_or_empty_instruction_file_fails_validation_naming_the_key(tmp_path, micro_config):
    empty = tmp_path / "empty.txt"
    empty.write_text(" \n")
    config = micro_config(
        **{"transfer.ssot.instructions": {"numeric": str(tmp_path / "nowhere.txt"), "open_ended": str(empty)}}
    )
    with pytest.raises(ConfigError) as raised:
        validate(config)
    message = str(raised.value)
    assert "transfer.ssot.instructions.numeric: the SSOT instruction 'numeric' cannot be read from" in message
    assert f"transfer.ssot.instructions.open_ended: the SSOT instruction 'open_ended' in {empty} is empty" in message


def _ssot_scores(path, role: str, text: str) -> None:
    record = {"role": role, "path": "x", "sha256": hashlib.sha256(text.encode()).hexdigest()}
    frame = pd.DataFrame({"prompt_id": ["a1"], "family": ["a"], "split": "ood", "params": "{}", "num_samples": 1})
    frame = frame.assign(num_valid=1, valid_rate=1.0, w1=0.1, spread=1.0, normalized_w1=0.1)
    frame = frame.assign(valid_rate_replicates=[[1.0]], normalized_w1_replicates=[[0.1]])
    config = {
        "reference": {"prompt_set": "ood", "decimals": 5, "max_bins": 16384},
        "samples": {"adapter": None, "ssot": True, "ssot_instruction": record},
    }
    artifacts.write_frame(frame, path, artifacts.provenance("scores", config))


def test_the_report_refuses_two_wordings_of_one_instruction(tmp_path):
    paths = {model: tmp_path / model / "ssot" / "scores" / "ood.parquet" for model in ("m1", "m2", "gpt")}
    for path in paths.values():
        path.parent.mkdir(parents=True)
    _ssot_scores(paths["m1"], "numeric", "one wording")
    _ssot_scores(paths["m2"], "numeric", "one wording")
    _ssot_scores(paths["gpt"], "numeric_harmony", "a developer message")  # another instruction, not a wording
    inputs = {"scores": {(model, "ssot", "ood"): path for model, path in paths.items()}}
    records.check_cells(inputs)
    _ssot_scores(paths["m2"], "numeric", "another wording")
    with pytest.raises(UserError, match=r"two different SSOT instructions 'numeric' \(sha256 "):
        records.check_cells(inputs)
