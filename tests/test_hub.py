"""The hub code path (paper models) against a local Hugging Face cache, as compute nodes use it offline."""

import json
import shutil

import pytest

from calft.cli import main
from calft.tokenize import fingerprint, load_backend

REPO = "calft-test/smollm2-copy"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch, smollm2_dir):
    """A Hugging Face cache holding one snapshot of the embedded model under a hub id."""
    cache = tmp_path / "hub"
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{REPO.replace('/', '--')}"
    shutil.copytree(smollm2_dir, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return repo / "snapshots" / revision


def test_prepare_hub_model_resolves_the_cached_snapshot(tmp_path, hub_cache):
    marker = tmp_path / "model.json"
    assert main(["prepare-model", "--source", REPO, "--output", str(marker)]) == 0
    info = json.loads(marker.read_text())
    assert info["model_id"] == REPO and info["snapshot"] == str(hub_cache)


def test_hub_id_tokenizer_comes_from_the_cache(hub_cache, smollm2_dir):
    assert fingerprint(load_backend(REPO), "<|im_end|>") == fingerprint(load_backend(str(smollm2_dir)), "<|im_end|>")


def test_build_tries_from_a_hub_id(tmp_path, hub_cache, smollm2_dir):
    targets, tries = tmp_path / "targets.parquet", tmp_path / "tries.parquet"
    main(["discretize", "--prompt-set", "ood", "--decimals", "1", "--max-bins", "20", "--families", "chi",
          "--output", str(targets)])
    assert main(["build-tries", "--targets", str(targets), "--tokenizer", REPO, "--terminator", "<|im_end|>",
                 "--same-tokenizer", str(smollm2_dir), "--output", str(tries)]) == 0
    assert tries.exists()
