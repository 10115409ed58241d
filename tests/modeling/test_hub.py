"""The hub code path (paper models) against a local Hugging Face cache, as compute nodes use it offline.

huggingface_hub reads HF_HUB_CACHE and HF_HUB_OFFLINE when it is imported, so each check runs the
`calft` command in a fresh process with that environment, exactly as a workflow rule does."""

import json
import os
import shutil
import sys

import pytest
from conftest import build_tries, cli_settings, discretize, run_checked

REPO = "calft-test/smollm2-copy"


@pytest.fixture
def hub_env(tmp_path, smollm2_dir):
    """Environment whose Hugging Face cache holds one snapshot of the embedded model under a hub id."""
    cache = tmp_path / "hub"
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{REPO.replace('/', '--')}"
    shutil.copytree(smollm2_dir, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    return env, repo / "snapshots" / revision


def calft(env, *args):
    return run_checked([sys.executable, "-m", "calft.cli", *args], env=env).stdout.strip()


def test_prepare_hub_model_resolves_the_cached_snapshot(tmp_path, hub_env):
    env, snapshot = hub_env
    marker = tmp_path / "model.json"
    calft(env, "prepare-model", *cli_settings(source=REPO), "--output", str(marker))
    info = json.loads(marker.read_text())
    assert info["artifact"] == "hub_model"
    assert info["config"]["model_id"] == REPO and info["config"]["snapshot"] == str(snapshot)


def test_hub_id_tokenizer_comes_from_the_cache(hub_env, smollm2_dir):
    env, _ = hub_env
    terminator = cli_settings(terminator="<|im_end|>")
    from_hub = calft(env, "fingerprint", *terminator, "--tokenizer", REPO)
    assert from_hub == calft(env, "fingerprint", *terminator, "--tokenizer", str(smollm2_dir))


def test_build_tries_from_a_hub_id_equal_those_of_the_local_folder(tmp_path, hub_env, smollm2_dir):
    import pandas as pd

    from calft import artifacts

    env, _ = hub_env
    targets = tmp_path / "targets.parquet"
    calft(env, *discretize(targets, "ood", 1, 20, families=["chi"]))
    calft(env, *build_tries(targets, REPO, tmp_path / "hub.parquet"), "--same-tokenizer", str(smollm2_dir))
    calft(env, *build_tries(targets, smollm2_dir, tmp_path / "local.parquet"))
    hub, local = (pd.read_parquet(tmp_path / f"{name}.parquet") for name in ("hub", "local"))
    assert len(hub) > len(pd.read_parquet(targets)) and hub.equals(local)
    recorded = [artifacts.read_provenance(tmp_path / f"{name}.parquet")["config"] for name in ("hub", "local")]
    assert recorded[0]["fingerprint"] == recorded[1]["fingerprint"] and recorded[0]["tokenizer"] == REPO
