"""The hub code path (paper models) for real: `calft prepare-model` downloads from a local hub over
HTTP (tests/local_hub.py, HF_ENDPOINT) into a fresh Hugging Face cache, with a commit as the revision,
as huggingface_hub lays it out (snapshots/<commit>/, no refs/main); then the jobs load the model
offline from exactly the recorded snapshot, whatever `main` says.

huggingface_hub reads HF_ENDPOINT, HF_HUB_CACHE and HF_HUB_OFFLINE when it is imported, so each step
runs in a fresh process with that environment, exactly as a workflow rule does."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import build_tries, cli_settings, discretize, run_checked
from local_hub import LocalHub

REPO = "acme/tiny-chat"
PINNED = "1" * 40
MOVED = "2" * 40
TERMINATOR = cli_settings(terminator="<|im_end|>")


@pytest.fixture
def hub(tmp_path, tiny_model_dir):
    """A local hub whose `main` moved after the pinned commit (its weights differ), and the environment
    of a node with internet access and an empty Hugging Face cache."""
    import torch
    from transformers import AutoModelForCausalLM

    moved = tmp_path / "moved"
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        model.lm_head.weight.add_(1.0)
    model.save_pretrained(moved)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"):
        if (tiny_model_dir / name).exists():
            shutil.copy(tiny_model_dir / name, moved / name)
    with LocalHub() as server:
        server.commit(REPO, tiny_model_dir, PINNED)
        server.commit(REPO, moved, MOVED)  # main moves on
        env = {**os.environ, "HF_ENDPOINT": server.url, "HF_HUB_CACHE": str(tmp_path / "cache")}
        env.pop("HF_HUB_OFFLINE", None)
        yield server, env


def calft(env, *args):
    return run_checked([sys.executable, "-m", "calft.cli", *args], env=env).stdout.strip()


def download(env, marker, revision=PINNED):
    calft(env, "prepare-model", *cli_settings(source=REPO, revision=revision), "--output", str(marker))
    return json.loads(marker.read_text())["config"]


def head_weight_sum(env, model_dir) -> float:
    """The sum of the output layer's weights as a job loads them (offline, through calft's loader)."""
    code = (
        "import sys; from calft.modeling.loader import load_base; from calft.modeling.settings import ModelEntry; "
        "entry = ModelEntry.from_dict({'source': 'x', 'tokenizer': 't', 'terminator': '<|im_end|>', "
        "'dtype': 'float32'}); "
        "print(float(load_base(sys.argv[1], entry).lm_head.weight.sum()))"
    )
    offline = env | {"HF_HUB_OFFLINE": "1"}
    return float(run_checked([sys.executable, "-c", code, str(model_dir)], env=offline).stdout)


def test_a_pinned_download_is_laid_out_as_the_hub_library_lays_it_and_jobs_load_it_offline(tmp_path, hub):
    server, env = hub
    marker = tmp_path / "model.json"
    recorded = download(env, marker)
    repository = tmp_path / "cache" / f"models--{REPO.replace('/', '--')}"
    assert recorded["commit"] == PINNED and recorded["snapshot"] == str(repository / "snapshots" / PINNED)
    assert not (repository / "refs" / "main").exists()  # a commit as the revision writes no ref
    assert any(request.startswith("GET /api/models/") for request in server.requests)

    # What every job did before: the hub id, offline. huggingface_hub finds no snapshot for it.
    code = f"from transformers import AutoTokenizer; AutoTokenizer.from_pretrained({REPO!r})"
    offline = env | {"HF_HUB_OFFLINE": "1"}
    by_id = subprocess.run([sys.executable, "-c", code], env=offline, capture_output=True, text=True)
    assert by_id.returncode != 0

    # What a job does now: the marker, offline, whatever the hub serves meanwhile.
    server.repositories.clear()
    assert calft(offline, "fingerprint", *TERMINATOR, "--tokenizer", str(marker)) == calft(
        offline, "fingerprint", *TERMINATOR, "--tokenizer", str(recorded["snapshot"])
    )


def test_jobs_load_the_pinned_commit_after_main_moved_and_an_older_download_left_refs_main(
    tmp_path, hub, tiny_model_dir
):
    _, env = hub
    unpinned = download(env, tmp_path / "unpinned.json", revision="main")  # someone's earlier download
    assert unpinned["commit"] == MOVED
    assert (tmp_path / "cache" / f"models--{REPO.replace('/', '--')}" / "refs" / "main").read_text() == MOVED
    marker = tmp_path / "pinned.json"
    download(env, marker)
    pinned = head_weight_sum(env, marker)
    assert pinned == pytest.approx(head_weight_sum(env, tiny_model_dir))
    assert pinned != pytest.approx(head_weight_sum(env, tmp_path / "unpinned.json"))


@pytest.mark.parametrize("damage", ["snapshot removed", "weights blob removed", "weights truncated"])
def test_a_job_whose_snapshot_is_missing_or_incomplete_stops_with_one_line(tmp_path, hub, damage):
    _, env = hub
    marker = tmp_path / "model.json"
    snapshot = download(env, marker)["snapshot"]
    weights = os.path.realpath(os.path.join(snapshot, "model.safetensors"))
    if damage == "snapshot removed":
        shutil.rmtree(snapshot)
    elif damage == "weights blob removed":
        os.remove(weights)
    else:
        with open(weights, "r+b") as stream:
            stream.truncate(100)
    offline = env | {"HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "calft.cli", "fingerprint", *TERMINATOR, "--tokenizer", str(marker)],
        env=offline,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert f"model {REPO} at revision {PINNED} is not in the Hugging Face cache" in line
    assert "download_hub_model" in line and str(marker) in line


def test_a_marker_of_another_commit_than_the_config_pins_is_refused(tmp_path, hub):
    _, env = hub
    marker = tmp_path / "model.json"
    download(env, marker, revision="main")
    code = (
        "import sys; from calft.modeling.loader import model_source; from calft.modeling.settings import ModelEntry; "
        f"entry = ModelEntry.from_dict({{'source': {REPO!r}, 'revision': {PINNED!r}, 'tokenizer': 't', "
        "'terminator': '<|im_end|>'}); model_source(sys.argv[1], entry)"
    )
    result = subprocess.run([sys.executable, "-c", code, str(marker)], env=env, capture_output=True, text=True)
    assert f"holds {REPO} at commit {MOVED}, but the config pins {PINNED}" in result.stderr


def test_build_tries_from_a_marker_equal_those_of_the_local_folder_and_record_the_snapshot(
    tmp_path, hub, tiny_model_dir
):
    import pandas as pd

    from calft import artifacts

    _, env = hub
    marker = tmp_path / "model.json"
    download(env, marker)
    offline = env | {"HF_HUB_OFFLINE": "1"}
    targets = tmp_path / "targets.parquet"
    calft(offline, *discretize(targets, "ood", 1, 20, families=["chi"]))
    calft(offline, *build_tries(targets, marker, tmp_path / "hub.parquet"), "--same-tokenizer", str(tiny_model_dir))
    calft(offline, *build_tries(targets, tiny_model_dir, tmp_path / "local.parquet"))
    hub_tries, local = (pd.read_parquet(tmp_path / f"{name}.parquet") for name in ("hub", "local"))
    assert len(hub_tries) > len(pd.read_parquet(targets)) and hub_tries.equals(local)
    recorded = [artifacts.read_provenance(tmp_path / f"{name}.parquet")["config"] for name in ("hub", "local")]
    assert recorded[0]["fingerprint"] == recorded[1]["fingerprint"]


def test_every_command_that_reads_a_model_or_tokenizer_runs_offline():
    from calft.cli import parser

    commands = parser()._subparsers._group_actions[0].choices
    readers = {
        name
        for name, command in commands.items()
        if {action.dest for action in command._actions} & {"model_dir", "tokenizer", "same_tokenizer"}
    }
    assert {"build-tries", "fingerprint", "construction-cost", "sample", "train", "noveltybench"} <= readers
    assert {name for name in readers if commands[name].get_default("offline") is not True} == set()


def test_a_hub_adapter_is_downloaded_pinned_without_pickles_and_imported_offline(tmp_path, hub, tiny_model_dir):
    """A declared hub adapter: `prepare-model` with files=adapter fetches its config and safetensors
    at the pinned commit (never a pickled file the repository also holds); import-adapter then
    reads that snapshot offline and records the commit."""
    from test_adapters import write_foreign_adapter

    server, env = hub
    folder = write_foreign_adapter(tiny_model_dir, tmp_path / "lora")
    (folder / "training_args.bin").write_bytes(b"not loaded")
    server.commit("acme/tiny-lora", folder, PINNED, branch="main")
    marker = tmp_path / "theirs.json"
    settings = cli_settings(source="acme/tiny-lora", revision=PINNED, files="adapter")
    calft(env, "prepare-model", *settings, "--output", str(marker))
    record = json.loads(marker.read_text())["config"]
    assert record["commit"] == PINNED and "training_args.bin" not in record["files"]
    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(record["files"])
    entry = {"source": "embedded", "tokenizer": "smollm2", "terminator": "<|im_end|>", "dtype": "float32"}
    adapter = {"model": "smol", "hub": "acme/tiny-lora", "revision": PINNED, "trust": True}
    offline = env | {"HF_HUB_OFFLINE": "1"}
    arguments = cli_settings(name="theirs", model=entry, adapter=adapter)
    output = tmp_path / "imported"
    run_checked(
        [sys.executable, "-m", "calft.cli", "import-adapter", *arguments, "--model-dir", str(tiny_model_dir),
         "--source", str(marker), "--output", str(output)],
        env=offline,
    )  # fmt: skip
    imported = json.loads((output / "calft_provenance.json").read_text())["config"]["imported"]
    assert imported == imported | {"source": "acme/tiny-lora", "revision": PINNED}
