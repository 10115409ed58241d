"""Bad input, second round: an output path never destroys what is not calft's, a checkpoint never runs
code, verified data folders cannot be bypassed, broken artifacts and adapters are refused, non-finite
numbers stop the run, blocking inputs are refused, and every case is one line with exit 2 (a mistake
in the input) or 1 (a run-time failure). The fuzz test at the end sends malformed files of every
artifact kind into every command that reads them."""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import torch
from conftest import SMOL_ENTRY as TINY
from conftest import TINY_TRAINING as TRAINING
from conftest import build_tries, cli_settings, discretize
from conftest import train_arguments as _train

from calft import artifacts
from calft.cli import main
from calft.errors import RunError, UserError

SAMPLE = cli_settings(model=TINY, sampling={"num_samples": 2, "max_new_tokens": 3})
MODEL = cli_settings(model=TINY)
REPORT = cli_settings(models=["m"], methods=["base"], prompt_sets=["ood"])


def _error(capsys) -> str:
    """The last line calft printed on stderr, checked to come with no traceback."""
    text = capsys.readouterr().err
    assert "Traceback" not in text, text
    return text.strip().splitlines()[-1]


def _tree(folder: Path) -> dict:
    """Every file under `folder` (hidden ones too) with its size and modification time."""
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


# ---------------------------------------------------------------------------------------------
# Outputs


def test_an_output_path_replaces_only_calfts_own_artifact_of_the_same_kind(tmp_path, capsys, work):
    def discretize_into(output):
        return discretize(output, "ood", 2, 20, families=["poisson"])

    users = tmp_path / "d"
    (users / "sub").mkdir(parents=True)
    (users / "sub" / "data.txt").write_text("x")
    assert main(discretize_into(users)) == 2
    assert "exists and is not a calft artifact" in _error(capsys)
    assert (users / "sub" / "data.txt").read_text() == "x"

    plain = tmp_path / "notes.parquet"
    plain.write_text("mine")
    assert main(discretize_into(plain)) == 2 and plain.read_text() == "mine"
    shutil.copy(work / "scores.parquet", tmp_path / "scores.parquet")
    assert main(discretize_into(tmp_path / "scores.parquet")) == 2
    assert "is a calft 'scores' artifact; calft replaces only its own 'targets' artifacts" in _error(capsys)

    (tmp_path / "empty").mkdir()
    for output in (tmp_path / "empty", tmp_path / "targets.parquet", tmp_path / "targets.parquet"):
        assert main(discretize_into(output)) == 0  # an empty folder, nothing, the same kind
    for output in ("", ".", "..", str(tmp_path / ("x" * 300))):
        assert main(discretize_into(output)) == 2
        message = _error(capsys)
        assert "names no file or folder to write" in message or "longer than the 255 bytes" in message


def test_an_output_that_is_or_holds_an_input_is_refused(tmp_path, capsys, work, tiny_model_dir):
    for name in ("samples.parquet", "ood.parquet"):
        shutil.copytree(work / name, tmp_path / name) if (work / name).is_dir() else shutil.copy(
            work / name, tmp_path / name
        )
    before = _tree(tmp_path)
    samples, targets = str(tmp_path / "samples.parquet"), str(tmp_path / "ood.parquet")
    assert main(["score", "--samples", samples, "--targets", targets, "--output", samples]) == 2
    assert main(build_tries(targets, tiny_model_dir, targets)) == 2
    assert _tree(tmp_path) == before
    results = tmp_path / "results"
    shutil.copytree(work / "results", results)
    before = _tree(tmp_path)
    assert (
        main(
            [
                "aggregate",
                *REPORT,
                "--results",
                str(results),
                "--tables",
                str(results),
                "--figures",
                str(tmp_path / "figures"),
            ]
        )
        == 2
    )
    assert "--tables" in _error(capsys) and _tree(tmp_path) == before


# ---------------------------------------------------------------------------------------------
# Checkpoints


class _Planted:
    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_never_runs_code_and_a_damaged_one_names_the_way_out(tmp_path, capsys, work, tiny_model_dir):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    planted = _Planted()
    planted.marker = tmp_path / "code-ran"
    (run / "checkpoints" / "state.pt").write_bytes(pickle.dumps({"fingerprint": planted}))
    assert main(_train(tiny_model_dir, work / "train.parquet", run)) == 2
    assert "checkpoints exists and is not a calft artifact" in _error(capsys)
    assert not planted.marker.exists() and not (run / "adapter").exists()

    shutil.rmtree(run / "checkpoints")
    shutil.copytree(work / "trained" / "checkpoints", run / "checkpoints")  # a real one, from the fixture's run
    tensors = run / "checkpoints" / "tensors.safetensors"
    tensors.write_bytes(tensors.read_bytes()[: tensors.stat().st_size // 2])
    assert main(_train(tiny_model_dir, work / "train.parquet", run)) == 2
    message = _error(capsys)
    assert "the checkpoint" in message and "is damaged" in message and "--restart" in message
    assert main(_train(tiny_model_dir, work / "train.parquet", run, "--restart")) == 0
    assert (run / "adapter" / artifacts.RECORD).exists()


def test_no_pickle_is_loaded_outside_the_irt_conversion():
    source = Path(__file__).resolve().parents[1] / "src"
    found = subprocess.run(
        ["grep", "-rn", r"weights_only=False\|pickle.load", str(source)], capture_output=True, text=True
    ).stdout
    assert found == ""
    irt = (source / "calft" / "retention" / "data.py").read_text()
    assert "_ReleaseUnpickler(" in irt and irt.count(".load()") == 1


# ---------------------------------------------------------------------------------------------
# Data folders


def test_a_verified_data_folder_cannot_be_bypassed(tmp_path, capsys, tiny_model_dir):
    import gzip

    data = tmp_path / "slices"
    settings = json.dumps(
        {"offline": True, "slices": ["stdlib_docstrings"], "offline_max_documents": 1, "context": 64, "stride": 32}
    )
    assert main(["perplexity-data", "--settings", settings, "--output", str(data)]) == 0

    def perplexity(section: str) -> list[str]:
        return [
            "perplexity",
            "--settings",
            json.dumps({"model": TINY, "perplexity": json.loads(section)}),
            "--model-dir",
            str(tiny_model_dir),
            "--data-dir",
            str(data),
            "--output",
            str(tmp_path / "p.parquet"),
        ]

    with gzip.open(data / "stdlib_docstrings" / "test" / ".evil.jsonl.gz", "wt") as stream:
        stream.write(json.dumps({"text": "planted " * 50}) + "\n")
    assert main(perplexity(settings)) == 2 and "no longer holds the files recorded" in _error(capsys)
    (data / "stdlib_docstrings" / "test" / ".evil.jsonl.gz").unlink()
    (data / artifacts.RECORD).unlink()
    assert main(perplexity(settings)) == 2 and "perplexity.trust_data_dir: true" in _error(capsys)
    assert not (tmp_path / "p.parquet").exists()
    assert main(perplexity(json.dumps(json.loads(settings) | {"trust_data_dir": True}))) == 0
    assert (tmp_path / "p.parquet").exists()


def test_config_validation_refuses_an_unrecorded_data_dir_unless_trusted(tmp_path, micro_config):
    from calft.config import ConfigError, validate

    (tmp_path / "curated.jsonl").write_text("")
    (tmp_path / "wildchat_1k.jsonl").write_text("")
    config = micro_config(**{"transfer.noveltybench": {"enabled": True, "data_dir": str(tmp_path)}})
    with pytest.raises(ConfigError, match=r"transfer.noveltybench.data_dir: .* has no calft_provenance.json"):
        validate(config)
    config = micro_config(
        **{"transfer.noveltybench": {"enabled": True, "data_dir": str(tmp_path), "trust_data_dir": True}}
    )
    validate(config)


# ---------------------------------------------------------------------------------------------
# Structurally broken artifacts


def _rewrite(path: Path, change) -> None:
    """Rewrite every part of an artifact with `change(table)`, keeping its provenance."""
    info = artifacts.read_provenance(path)
    for part in artifacts.parts(path):
        table = artifacts.read_table(part, info["artifact"])
        changed = change(table)
        with artifacts.parquet_writer(part, changed.schema.remove_metadata(), info) as writer:
            writer.write_table(changed.replace_schema_metadata(None))


def _set(table: pa.Table, name: str, values) -> pa.Table:
    index = table.schema.get_field_index(name)
    return table.set_column(index, table.schema.field(index), pa.array(values, table.schema.field(index).type))


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            lambda t: _set(
                t,
                "parent",
                np.select([t["node"].to_numpy() == 1, t["node"].to_numpy() == 2], [2, 1], t["parent"].to_numpy()),
            ),
            "a parent that is not an earlier node",
        ),  # nodes 1 and 2 each other's parent: a cycle
        (
            lambda t: _set(t, "parent", np.where(t["node"].to_numpy() == 3, 10**6, t["parent"].to_numpy())),
            "a parent that is not an earlier node",
        ),
        (lambda t: _set(t, "q", np.zeros(t.num_rows)), "do not sum to 1"),
        (lambda t: _set(t, "node", t["node"].to_numpy() * 2), "node ids are not 0, 1, ..., n-1"),
    ],
)
def test_tries_that_are_not_a_forest_of_normalized_trees_are_refused(
    tmp_path, capsys, work, tiny_model_dir, damage, message
):
    tries = tmp_path / "tries.parquet"
    shutil.copytree(work / "train-tries.parquet", tries)
    _rewrite(tries, damage)
    started = time.monotonic()
    assert main(_train(tiny_model_dir, work / "train.parquet", tmp_path, "--tries", str(tries), method="soft")) == 2
    assert message in _error(capsys) and time.monotonic() - started < 60
    assert not (tmp_path / "adapter").exists()


def test_tries_with_tokens_beyond_the_vocabulary_are_refused(tmp_path, capsys, work, tiny_model_dir):
    tries = tmp_path / "tries.parquet"
    shutil.copytree(work / "ood-tries.parquet", tries)
    _rewrite(tries, lambda t: _set(t, "token", np.where(t["token"].to_numpy() >= 0, 10**7 + t["node"].to_numpy(), -1)))
    assert (
        main(
            [
                "logit-kl",
                *MODEL,
                "--model-dir",
                str(tiny_model_dir),
                "--tries",
                str(tries),
                "--targets",
                str(work / "ood.parquet"),
                "--output",
                str(tmp_path / "kl.parquet"),
            ]
        )
        == 2
    )
    assert "beyond the model's" in _error(capsys) and not (tmp_path / "kl.parquet").exists()


def test_targets_without_mass_and_samples_without_a_finite_value_or_a_target_are_refused(
    tmp_path, capsys, work, tiny_model_dir
):
    targets = tmp_path / "train.parquet"
    shutil.copytree(work / "train.parquet", targets)
    _rewrite(targets, lambda t: _set(t, "mass", np.zeros(t.num_rows)))
    assert main(_train(tiny_model_dir, targets, tmp_path)) == 2 and "do not sum to 1" in _error(capsys)

    samples = tmp_path / "samples.parquet"
    shutil.copy(work / "samples.parquet", samples)
    _rewrite(samples, lambda t: _set(_set(t, "valid", np.ones(t.num_rows, bool)), "value", np.full(t.num_rows, np.nan)))
    score = [
        "score",
        "--samples",
        str(samples),
        "--targets",
        str(work / "ood.parquet"),
        "--output",
        str(tmp_path / "scores.parquet"),
    ]
    assert main(score) == 2 and "valid samples with a non-finite value" in _error(capsys)
    shutil.copy(work / "samples.parquet", samples)
    _rewrite(samples, lambda t: _set(t, "prompt_id", ["no_such_prompt"] * t.num_rows))
    assert main(score) == 2 and "'no_such_prompt'" in _error(capsys)
    assert not (tmp_path / "scores.parquet").exists()


# ---------------------------------------------------------------------------------------------
# Adapters


def _adapter_variant(work: Path, tmp_path: Path, change) -> Path:
    adapter = tmp_path / "adapter"
    shutil.copytree(work / "trained" / "adapter", adapter)
    change(adapter)
    return adapter


def _with_record(adapter: Path, **config) -> None:
    info = artifacts.read_record(adapter)
    info["config"] |= config
    artifacts.write_record(adapter, info)


def _renamed_keys(adapter: Path) -> None:
    from safetensors.torch import load_file, save_file

    weights = adapter / "adapter_model.safetensors"
    save_file({name.replace("q_proj", "w_proj"): tensor for name, tensor in load_file(weights).items()}, weights)
    _with_record(adapter, weights_sha256=artifacts.sha256(weights))  # only the key check can tell


def _zeroed(adapter: Path) -> None:
    from safetensors.torch import load_file, save_file

    weights = adapter / "adapter_model.safetensors"
    save_file({name: torch.zeros_like(tensor) for name, tensor in load_file(weights).items()}, weights)
    _with_record(adapter, weights_sha256=artifacts.sha256(weights))


def _shrunk_rank(adapter: Path) -> None:
    config = json.loads((adapter / "adapter_config.json").read_text())
    (adapter / "adapter_config.json").write_text(json.dumps(config | {"r": 2}))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: (a / "adapter_model.safetensors").write_bytes(b""), "its checksum differs"),
        (_renamed_keys, "weights differ by name"),
        (_zeroed, "did not load into the model"),
        (_shrunk_rank, "cannot load the adapter"),
        (
            lambda a: _with_record(a, base_model="0123456789abcdef", model={"source": "Qwen/Qwen3-8B"}),
            "was trained on another base model (Qwen/Qwen3-8B)",
        ),
        (lambda a: (a / artifacts.RECORD).write_text("{not json"), "is not a calft artifact"),
        (lambda a: (a / artifacts.RECORD).unlink(), "is not a calft artifact"),
    ],
)
def test_an_adapter_that_would_do_nothing_or_belongs_to_another_model_is_refused(
    tmp_path, capsys, work, tiny_model_dir, change, message
):
    adapter = _adapter_variant(work, tmp_path, change)
    assert (
        main(
            [
                "sample",
                *SAMPLE,
                "--model-dir",
                str(tiny_model_dir),
                "--adapter",
                str(adapter),
                "--targets",
                str(work / "ood.parquet"),
                "--output",
                str(tmp_path / "s.parquet"),
            ]
        )
        == 2
    )
    assert message in _error(capsys) and not (tmp_path / "s.parquet").exists()


def test_an_adapter_trained_on_another_architecture_is_refused(tmp_path, capsys, work, replica):
    folder, entry = replica("qwen3")
    assert (
        main(
            [
                "sample",
                *cli_settings(model=entry, sampling={"num_samples": 2, "max_new_tokens": 3}),
                "--model-dir",
                str(folder),
                "--adapter",
                str(work / "trained" / "adapter"),
                "--targets",
                str(work / "ood.parquet"),
                "--output",
                str(tmp_path / "s.parquet"),
            ]
        )
        == 2
    )
    assert "was trained on another base model (embedded)" in _error(capsys)


# ---------------------------------------------------------------------------------------------
# Numbers


def test_training_stops_at_the_first_non_finite_loss_keeping_the_last_good_checkpoint(
    tmp_path, capsys, work, tiny_model_dir, monkeypatch
):
    from calft.training import loop

    calls = {"count": 0}
    real = loop.example_losses

    def poisoned(*args, **kwargs):  # from the third step on (one micro-batch per step), the loss is NaN
        calls["count"] += 1
        losses = real(*args, **kwargs)
        return losses * float("nan") if calls["count"] >= 3 else losses

    monkeypatch.setattr(loop, "example_losses", poisoned)
    training = TRAINING | {
        "hard_samples_per_prompt_per_epoch": 12,
        "hard_group_size": 4,
        "global_batch_size": 4,
        "per_device_batch_size": 4,
        "checkpoint_every": 1,
    }
    command = _train(tiny_model_dir, work / "train.parquet", tmp_path, training=training)
    assert main(command) == 1
    message = _error(capsys)
    assert "non-finite loss or gradient at step 3" in message and "the checkpoint of step 2" in message
    from calft.training import checkpoint

    assert checkpoint.load(tmp_path / "checkpoints")[1]["step"] == 2
    assert not (tmp_path / "adapter").exists() and not (tmp_path / "log.parquet").exists()


@pytest.mark.parametrize("strategy", ["shared", "batched"])
def test_sampling_refuses_non_finite_probabilities(tiny_model_dir, strategy):
    from transformers import AutoModelForCausalLM

    from calft.modeling.generation import sample

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        model.model.norm.weight.fill_(float("nan"))
    with pytest.raises(RunError, match="not finite"):
        sample(model, [1, 2, 3], [1, 2, 3, 4], 10, {0}, strategy=strategy)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"training.learning_rate": 1e30}, "training.learning_rate: 1e+30 is greater than the maximum of 1"),
        ({"training.learning_rate": 1e300}, "training.learning_rate: 1e+300 is greater than the maximum of 1"),
        ({"sampling.temperature": 1e-300}, "sampling.temperature: 1e-300 is less than the minimum of 0.001"),
        ({"training.seed": -1}, "training.seed: -1 is less than the minimum of 0"),
        ({"sampling.seed": 2**64}, "sampling.seed: 18446744073709551616 is greater than the maximum"),
        ({"models.smol.template_date": "2024-02-30"}, "models.smol.template_date: '2024-02-30' is not a 'date'"),
        ({"models.smol.chat_template_kwargs": {"tokenize": True}}, "models.smol.chat_template_kwargs: 'tokenize'"),
        ({"models.smol.path": "/data/{x}"}, "models.smol.path: '/data/{x}' does not match"),
        ({"retention.data_dir": "probes{a}"}, "retention.data_dir: 'probes{a}' does not match"),
        (
            {"models": {7: {"source": "embedded", "tokenizer": "t", "terminator": "x"}}},
            "models: 7 is not of type 'string'",
        ),
        ({"run_models": [7]}, "run_models.0: 7 is not of type 'string'"),
    ],
)
def test_config_values_the_code_cannot_use_are_refused_naming_the_key(micro_config, change, message):
    from calft.config import ConfigError, validate

    with pytest.raises(ConfigError) as refused:
        validate(micro_config(**change))
    assert message in str(refused.value)


# ---------------------------------------------------------------------------------------------
# Blocking inputs, run-time failures, malformed side files


def test_a_fifo_or_device_input_is_refused_at_once(tmp_path, work):
    fifo = tmp_path / "samples.parquet"
    os.mkfifo(fifo)
    data = tmp_path / "probes"
    data.mkdir()
    os.mkfifo(data / "arithmetic.parquet")
    commands = [
        ["score", "--samples", str(fifo), "--targets", str(work / "ood.parquet"), "--output", str(tmp_path / "s")],
        ["score", "--samples", "/dev/zero", "--targets", str(work / "ood.parquet"), "--output", str(tmp_path / "s")],
        [
            "retention",
            *cli_settings(model=TINY, retention={"suite": "offline"}),
            "--model-dir",
            "m",
            "--data-dir",
            str(data),
            "--examples",
            str(tmp_path / "e"),
            "--output",
            str(tmp_path / "o"),
        ],
    ]
    for command in commands:
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "calft.cli", *command], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 2 and "is not a regular file" in result.stderr.strip().splitlines()[-1]
        assert time.monotonic() - started < 60


def test_a_full_disk_is_one_line_with_status_1_and_the_old_artifact_is_kept(tmp_path, capsys, work, monkeypatch):
    import pyarrow.parquet as pq

    output = tmp_path / "scores.parquet"
    shutil.copy(work / "scores.parquet", output)
    before = output.read_bytes()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pq.ParquetWriter, "write_table", full)
    assert (
        main(
            [
                "score",
                "--samples",
                str(work / "samples.parquet"),
                "--targets",
                str(work / "ood.parquet"),
                "--output",
                str(output),
            ]
        )
        == 1
    )
    assert "No space left on device" in _error(capsys)
    assert output.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["scores.parquet"]


def _parent_of(process: Path) -> int | None:
    try:
        return int((process / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def test_a_killed_worker_is_one_line_with_status_1(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "calft.cli", *discretize(tmp_path / "t.parquet", "train", 5, 16384), "--workers", "2"],
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in process.stderr:
        if "worker(s)" in line:
            break
    time.sleep(1.0)
    children = [
        entry.name for entry in Path("/proc").iterdir() if entry.name.isdigit() and _parent_of(entry) == process.pid
    ]
    assert children
    os.kill(int(children[0]), signal.SIGKILL)
    error = process.stderr.read()
    assert process.wait(timeout=60) == 1
    assert "Traceback" not in error and "a worker process died" in error.strip().splitlines()[-1]
    assert not (tmp_path / "t.parquet").exists()


def test_malformed_irt_archives_and_noveltybench_prompt_files_are_one_line(tmp_path):
    from calft.retention.data import load_bundles
    from calft.transfer.noveltybench import read_prompt_files

    for name, content in (("junk.npz", b"not a zip"), ("empty.npz", b"")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(UserError, match="is not a converted IRT parameter archive"):
            load_bundles(tmp_path / name)
    np.savez(tmp_path / "no-tree.npz", a=np.zeros(2))
    with pytest.raises(UserError, match="KeyError"):
        load_bundles(tmp_path / "no-tree.npz")
    (tmp_path / "curated.jsonl").write_text('{"prompt": "a"}\n[1, 2]\n')
    with pytest.raises(UserError, match=r"curated.jsonl, line 2: not a JSON object with a string 'prompt'"):
        read_prompt_files(tmp_path, ["curated"], None)


def test_preparing_a_model_offline_or_with_a_bad_id_is_one_line(tmp_path):
    env = os.environ | {
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(tmp_path / "hub"),
        "PIP_INDEX_URL": (tmp_path / "no-index").as_uri(),
        "PIP_NO_INDEX": "1",
    }
    for source in ("no-such-org/no-such-model", "embedded"):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "calft.cli",
                "prepare-model",
                *cli_settings(source=source),
                "--output",
                str(tmp_path / "model"),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and "Traceback" not in result.stderr and "cannot download" in lines[-1]
    assert not (tmp_path / "model").exists()


# ---------------------------------------------------------------------------------------------
# The fuzz: malformed files of every kind into every command that reads them


def _truncated(path: Path) -> None:
    part = artifacts.parts(path)[0]
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])


def _wrong_columns(path: Path) -> None:
    _rewrite(path, lambda t: t.drop_columns([t.column_names[-2]]))


def _wrong_types(path: Path) -> None:
    def cast(table):
        name = next(f.name for f in table.schema if pa.types.is_floating(f.type) or pa.types.is_integer(f.type))
        return table.set_column(table.schema.get_field_index(name), name, pc.cast(table[name], pa.string()))

    _rewrite(path, cast)


NAN_COLUMN = {"targets": "mass", "tries": "q", "samples": "value", "scores": "valid_rate", "logit_kl": "logit_kl"}


def _nan(path: Path) -> None:
    kind = artifacts.read_provenance(path)["artifact"]

    def poison(table):
        values = table[NAN_COLUMN[kind]].to_numpy().copy()
        values[:] = np.nan
        table = _set(table, NAN_COLUMN[kind], values)
        return _set(table, "valid", np.ones(table.num_rows, bool)) if kind == "samples" else table

    _rewrite(path, poison)


def _empty(path: Path) -> None:
    _rewrite(path, lambda t: t.slice(0, 0))


MALFORMATIONS = {
    "truncated": _truncated,
    "wrong kind": None,
    "wrong columns": _wrong_columns,
    "wrong types": _wrong_types,
    "NaN": _nan,
    "empty": _empty,
}
# (command, the input's file in `work`, the argument list with {input}, {out} and {work} to fill in)
READERS = [
    ("build-tries", "train.parquet", build_tries("{input}", "{model}", "{out}/tries.parquet")),
    ("train hard", "train.parquet", _train("{model}", "{input}", Path("{out}"))),
    (
        "train soft",
        "train-tries.parquet",
        _train("{model}", "{work}/train.parquet", Path("{out}"), "--tries", "{input}", method="soft"),
    ),
    (
        "sample",
        "ood.parquet",
        ["sample", *SAMPLE, "--model-dir", "{model}", "--targets", "{input}", "--output", "{out}/s.parquet"],
    ),
    (
        "score samples",
        "samples.parquet",
        ["score", "--samples", "{input}", "--targets", "{work}/ood.parquet", "--output", "{out}/s.parquet"],
    ),
    (
        "score targets",
        "ood.parquet",
        ["score", "--samples", "{work}/samples.parquet", "--targets", "{input}", "--output", "{out}/s.parquet"],
    ),
    (
        "logit-kl",
        "ood-tries.parquet",
        [
            "logit-kl",
            *MODEL,
            "--model-dir",
            "{model}",
            "--tries",
            "{input}",
            "--targets",
            "{work}/ood.parquet",
            "--output",
            "{out}/k.parquet",
        ],
    ),
] + [
    (
        f"aggregate {kind}",
        f"results/m/base/{kind}/ood.parquet",
        [
            "aggregate",
            *REPORT,
            "--results",
            "{out}/results",
            "--ood-targets",
            "{work}/ood.parquet",
            "--tables",
            "{out}/tables",
            "--figures",
            "{out}/figures",
        ],
    )
    for kind in ("scores", "logit_kl", "samples")
]


def _filled(argument: str, placeholders: dict) -> str:
    for placeholder, value in placeholders.items():
        argument = argument.replace(placeholder, value)
    return argument


@pytest.mark.parametrize("malformation", list(MALFORMATIONS))
def test_fuzz_malformed_artifacts_into_every_command(tmp_path, capsys, work, tiny_model_dir, malformation):
    for reader, name, arguments in READERS:
        out = tmp_path / reader.replace(" ", "-")
        if reader.startswith("aggregate"):
            shutil.copytree(work / "results", out / "results")
            damaged = out / name
        else:
            damaged = out / Path(name).name
            out.mkdir()
            (shutil.copytree if (work / name).is_dir() else shutil.copy)(work / name, damaged)
        if malformation == "wrong kind":
            other = "samples" if artifacts.read_provenance(damaged)["artifact"] != "samples" else "scores"
            shutil.rmtree(damaged) if damaged.is_dir() else damaged.unlink()
            shutil.copy(work / f"{other}.parquet", damaged)
        else:
            MALFORMATIONS[malformation](damaged)
        fill = {"{input}": str(damaged), "{out}": str(out), "{work}": str(work), "{model}": str(tiny_model_dir)}
        command = [_filled(argument, fill) for argument in arguments]
        before = _tree(tmp_path)
        assert main(command) == 2, (reader, malformation)
        assert _error(capsys).startswith(f"calft {command[0]}: error:"), (reader, malformation)
        assert _tree(tmp_path) == before, (reader, malformation)
