import json

import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import build_tries, discretize

from calft import artifacts
from calft.cli import main


def test_discretize_writes_the_targets_table(tmp_path):
    output = tmp_path / "targets.parquet"
    assert main(discretize(output, "ood", 3, 101)) == 0
    parts = artifacts.parts(output)
    assert len(parts) == 6  # one part per held-out family
    assert all(pq.read_schema(part).remove_metadata() == artifacts.TARGETS_SCHEMA for part in parts)
    table = pd.read_parquet(output)
    assert table["prompt_id"].nunique() == 18 and set(table["split"]) == {"ood"}
    assert table.groupby("prompt_id", observed=True)["mass"].sum().sub(1).abs().max() < 1e-9
    truncnorm = table[table["prompt_id"] == "truncnorm_mu_1_sigma_1p5_lower_m1_upper_2"]
    assert json.loads(truncnorm["params"].iloc[0]) == {"mu": 1, "sigma": 1.5, "lower": -1, "upper": 2}
    assert (truncnorm["canonical"].str.split(".").str[1].str.len() == 3).all()
    info = artifacts.read_provenance(output)
    assert info["artifact"] == "targets" and info["config"]["max_bins"] == 101
    assert info["code_version"].startswith("0.")
    assert not list(tmp_path.glob(".*partial*"))


def test_reference_number_format_is_recorded_in_params(tmp_path):
    output = tmp_path / "targets.parquet"
    assert main(discretize(output, "unseen", 1, 10, number_format="reference", families=["binomial"])) == 0
    table = pd.read_parquet(output)
    assert table["params"].iloc[0] == '{"n": 25.0, "p": 0.5}'
    assert "n=25.0, p=0.5" in table["prompt"].iloc[0]


def test_build_tries_end_to_end(tmp_path, merging_tokenizer_dir):
    targets, tries = tmp_path / "targets.parquet", tmp_path / "tries.parquet"
    assert main(discretize(targets, "train", 2, 50, families=["gaussian", "skellam"], per_family=2)) == 0
    assert main([*build_tries(targets, merging_tokenizer_dir, tries, "<|end|>"), "--workers", "2"]) == 0
    nodes = pd.read_parquet(tries)
    assert set(nodes["prompt_id"]) == set(pd.read_parquet(targets)["prompt_id"])
    assert (
        nodes.groupby("prompt_id", observed=True)["canonical_index"].apply(lambda c: (c >= 0).sum())
        == pd.read_parquet(targets).groupby("prompt_id", observed=True).size()
    ).all()
    info = artifacts.read_provenance(tries)
    assert info["config"]["terminator"] == "<|end|>" and len(info["config"]["fingerprint"]) == 16
    assert info["config"]["targets"]["families"] == ["gaussian", "skellam"]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(families=["gaussian", "gausian"]), "unknown family 'gausian'"),
        (dict(max_bins=1), "max_bins: 1 is less than the minimum of 2"),
        (dict(families=["poisson"]), "family 'poisson' is not in prompt set 'train'"),
    ],
)
def test_bad_input_fails_clearly_and_writes_nothing(tmp_path, capsys, arguments, message):
    output = tmp_path / "targets.parquet"
    assert main(discretize(output, **dict(prompt_set="train", decimals=2, max_bins=10) | arguments)) == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_models_sharing_tries_must_share_the_tokenizer(tmp_path, smollm2_dir, merging_tokenizer_dir, capsys):
    targets = tmp_path / "targets.parquet"
    assert main(discretize(targets, "ood", 1, 10, families=["poisson"])) == 0
    copy = tmp_path / "copy"
    from calft.modeling.tokenizer import load_fast_tokenizer

    load_fast_tokenizer(str(smollm2_dir)).save_pretrained(copy)
    assert main([*build_tries(targets, smollm2_dir, tmp_path / "ok.parquet"), "--same-tokenizer", str(copy)]) == 0
    assert (
        main(
            [
                *build_tries(targets, smollm2_dir, tmp_path / "no.parquet"),
                "--same-tokenizer",
                str(merging_tokenizer_dir),
            ]
        )
        == 2
    )
    assert "cannot share tries" in capsys.readouterr().err
    assert not (tmp_path / "no.parquet").exists()


def test_construction_cost_builds_what_discretize_and_build_tries_build(tmp_path, merging_tokenizer_dir):
    """Table 24's measurements: per grid point and prompt, calft's output space and trie are exactly
    those the workflow's own commands build, and the reference's construction, timed beside it,
    builds the same outputs and one trie prefix per inner node of calft's trie."""
    settings = {
        "construction_cost": {
            "decimals": [1, 2],
            "max_bins": [40],
            "prompt_set": "ood",
            "max_prompts": 3,
            "tokenizer": "model",
        },
        "terminator": "<|end|>",
        "reference": {"decimals": 2, "max_bins": 40},
    }
    output = tmp_path / "cost.parquet"
    arguments = ["construction-cost", "--settings", json.dumps(settings), "--output", str(output)]
    assert main(arguments) == 2 and not output.exists()  # the model's tokenizer is not given
    assert main([*arguments, "--tokenizer", str(merging_tokenizer_dir)]) == 0
    cost = artifacts.read_table(output, "construction_cost").to_pandas()
    assert len(cost) == 2 * 2 * 3 and cost.groupby(["algorithm", "decimals"]).size().tolist() == [3] * 4
    assert (cost.space_seconds > 0).all() and (cost.trie_peak_bytes > 0).all() and (cost.space_peak_bytes > 0).all()
    ours = cost[cost.algorithm == "calft"].set_index(["decimals", "prompt_id"])
    theirs = cost[cost.algorithm == "reference"].set_index(["decimals", "prompt_id"]).loc[ours.index]
    assert (theirs.outputs == ours.outputs).all() and (theirs.trie_nodes == ours.trie_nodes - ours.outputs).all()
    for decimals in (1, 2):
        targets, tries = tmp_path / f"targets{decimals}.parquet", tmp_path / f"tries{decimals}.parquet"
        assert main(discretize(targets, "ood", decimals, 40)) == 0
        assert main(build_tries(targets, merging_tokenizer_dir, tries, "<|end|>")) == 0
        measured = ours.loc[decimals]
        outputs = pd.read_parquet(targets).groupby("prompt_id", observed=True).size()
        nodes = pd.read_parquet(tries).groupby("prompt_id", observed=True).size()
        assert (measured.outputs == outputs[measured.index]).all() and (
            measured.trie_nodes == nodes[measured.index]
        ).all()
    assert artifacts.read_provenance(output)["config"]["reference"] == {"decimals": 2, "max_bins": 40}
