"""Opening calft: adapters it did not train (the config's `adapters`), refused unless trusted,
checked even when trusted; distribution families declared in the config (`families`), refused when
invalid; both through the micro workflow like the built-in methods and families."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import SMOL_ENTRY, cli_settings, run_snakemake

from calft.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.model]

# Plain PEFT code, as a researcher elsewhere writes an adapter: nothing of calft is imported.
WRITE_ADAPTER = textwrap.dedent(
    """
    import sys
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base, output = sys.argv[1], sys.argv[2]
    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(output)
    """
)


def write_foreign_adapter(base: Path, folder: Path) -> Path:
    subprocess.run([sys.executable, "-c", WRITE_ADAPTER, str(base), str(folder)], check=True, capture_output=True)
    assert "calft" not in WRITE_ADAPTER
    return folder


@pytest.fixture(scope="module")
def foreign(tmp_path_factory, tiny_model_dir) -> Path:
    return write_foreign_adapter(tiny_model_dir, tmp_path_factory.mktemp("foreign") / "adapter")


def import_adapter(model_dir, source, output, trust=True, name="theirs") -> list[str]:
    adapter = {"model": "smol", "path": str(source), "trust": trust}
    return [
        "import-adapter",
        *cli_settings(name=name, model=SMOL_ENTRY, adapter=adapter),
        "--model-dir",
        str(model_dir),
        "--source",
        str(source),
        "--output",
        str(output),
    ]


def copy_of(folder: Path, into: Path) -> Path:
    import shutil

    return Path(shutil.copytree(folder, into))


def test_a_trusted_foreign_adapter_is_imported_with_its_record(foreign, tiny_model_dir, tmp_path):
    from calft import artifacts

    assert main(import_adapter(tiny_model_dir, foreign, tmp_path / "out")) == 0
    record = artifacts.read_record(tmp_path / "out", "adapter")["config"]
    assert record["method"] == "theirs"
    assert record["imported"]["source"] == str(foreign)
    assert record["imported"]["files_sha256"]["adapter_model.safetensors"] == artifacts.sha256(
        foreign / "adapter_model.safetensors"
    )


def test_an_untrusted_foreign_adapter_is_refused_naming_the_setting(foreign, tiny_model_dir, tmp_path, capsys):
    assert main(import_adapter(tiny_model_dir, foreign, tmp_path / "out", trust=False)) == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and "adapters.theirs.trust" in message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "damage, expected",
    [
        ("nan", "non-finite values in"),
        ("target", "targets the module 'c_attn', which the base model does not have"),
        ("pickle", "holds adapter_model.bin: calft loads safetensors only"),
        ("base", "names the base model 'someone/other-model'"),
    ],
)
def test_a_trusted_adapter_is_still_checked(foreign, tiny_model_dir, tmp_path, capsys, damage, expected):
    import torch
    from safetensors.torch import load_file, save_file

    folder = copy_of(foreign, tmp_path / "damaged")
    config = json.loads((folder / "adapter_config.json").read_text())
    if damage == "nan":
        weights = load_file(folder / "adapter_model.safetensors")
        name = sorted(weights)[0]
        weights[name][0, 0] = float("nan")
        save_file(weights, folder / "adapter_model.safetensors")
    elif damage == "target":
        config["target_modules"] = ["q_proj", "c_attn"]
    elif damage == "pickle":
        torch.save({}, folder / "adapter_model.bin")
    else:
        config["base_model_name_or_path"] = "someone/other-model"
    (folder / "adapter_config.json").write_text(json.dumps(config))
    assert main(import_adapter(tiny_model_dir, folder, tmp_path / "out")) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_adapter_of_another_architecture_is_refused(smollm2_dir, tiny_model_dir, tmp_path, capsys):
    adapter = write_foreign_adapter(smollm2_dir, tmp_path / "smol-adapter")
    assert main(import_adapter(tiny_model_dir, adapter, tmp_path / "out")) == 2
    assert "whose architecture differs" in capsys.readouterr().err


def test_the_config_refuses_an_untrusted_or_clashing_adapter(micro_config, foreign):
    from calft.config import ConfigError, validate

    config = micro_config(
        adapters={"soft": {"model": "smol", "path": str(foreign)}, "x": {"model": "nope", "hub": "a/b"}}
    )
    with pytest.raises(ConfigError) as refused:
        validate(config)
    message = str(refused.value)
    assert "adapters.soft: 'soft' is a built-in method's name" in message
    assert "adapters.soft.trust: calft did not train this adapter" in message
    assert "adapters.x.model: unknown model 'nope'" in message
    assert "adapters.x.revision: a hub adapter is loaded at a pinned commit" in message


# Two families that are not among the 30: a continuous one trained on, a discrete one held out.
DECLARED = {
    "half_normal": {
        "scipy": "halfnorm",
        "display": "Half-normal",
        "parameters": {"sigma": "scale"},
        "support": {"type": "continuous", "low": 0},
        "train": {"sigma": {"geo": [0.5, 3, 4]}},
        "test": [{"sigma": 4.5}],
    },
    "logarithmic": {
        "scipy": "logser",
        "display": "Logarithmic",
        "parameters": {"p": "p"},
        "support": {"type": "discrete", "low": 1},
        "test": [{"p": 0.6}, {"p": 0.9}],
    },
}


@pytest.fixture(scope="module")
def extension_run(tmp_path_factory, micro_config, tiny_model_dir, foreign) -> Path:
    """The micro workflow (base and soft) with the plain-PEFT adapter and two families declared."""
    import yaml

    work = tmp_path_factory.mktemp("extension-run")
    config = micro_config(
        **{
            "models.smol.path": str(tiny_model_dir),
            "methods": ["base", "soft"],
            "adapters": {"theirs": {"model": "smol", "path": str(foreign), "trust": True}},
            "families": DECLARED,
            "prompts.train_families": ["gaussian", "half_normal"],
            "prompts.evaluation": ["unseen", "ood"],
            "transfer.ssot.enabled": False,  # a baseline of the base model: nothing declared changes it
            "ablations": None,
        }
    )
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    run_snakemake("all", "--cores", "2", "--configfile", "config.yaml", cwd=work)
    return work


def test_the_micro_workflow_evaluates_and_reports_a_foreign_adapter(extension_run):
    import pandas as pd

    from calft import artifacts

    results = extension_run / "results"
    adapter = artifacts.read_record(results / "smol" / "theirs" / "adapter", "adapter")["config"]
    assert adapter["imported"]["source"].endswith("adapter")
    samples = artifacts.read_provenance(results / "smol" / "theirs" / "samples" / "ood.parquet")["config"]
    assert samples["adapter"]["method"] == "theirs"
    summary = pd.read_csv(results / "tables" / "summary.csv")
    assert {"base", "theirs"} <= set(summary.method)
    for table in ("structured_ood", "transfer", "retention_perplexity"):
        assert "theirs" in (results / "tables" / f"{table}.md").read_text(), table
    for evaluation in (
        "retention.parquet",
        "perplexity.parquet",
        "transfer/open_ended.parquet",
        "transfer/mcq.parquet",
    ):
        assert (results / "smol" / "theirs" / evaluation).exists(), evaluation


def test_declared_families_are_discretized_trained_on_evaluated_and_reported(extension_run):
    import pandas as pd

    from calft import artifacts

    results = extension_run / "results"
    train = artifacts.read_prompts(results / "targets" / "train" / "d2_b50.parquet", ["family", "prompt"])
    assert set(train.family) == {"gaussian", "half_normal"}
    assert any("from a Half-normal distribution with parameters sigma=0.5." in text for text in train.prompt)
    soft_log = artifacts.read_provenance(results / "smol" / "soft" / "train_log.parquet")["config"]
    assert soft_log["targets"]["declared_families"]["half_normal"]["scipy"] == "halfnorm"
    per_prompt = pd.read_csv(results / "tables" / "per_prompt.csv")
    for family, prompt_set in (("half_normal", "unseen"), ("logarithmic", "ood")):
        rows = per_prompt[(per_prompt.family == family) & (per_prompt.prompt_set == prompt_set)]
        assert set(rows.method) == {"base", "soft", "theirs"}, family
        assert rows.logit_kl.notna().all()
    families_table = pd.read_csv(results / "tables" / "table5_families.csv")
    declared = families_table[families_table.id.isin(DECLARED)].set_index("id")
    assert declared.loc["half_normal", "split"] == "seen" and declared.loc["logarithmic", "split"] == "held out (OOD)"
    assert declared.loc["logarithmic", "kind"] == "integer"


def test_declared_families_are_judged_by_their_support_and_scaled_by_their_quantiles():
    """calft's judging and scoring of the declared logarithmic law (in a process of its own: the
    declaration joins the families' registry) against SciPy by hand: valid = integers >= 1, W1 to
    the law's quantiles at (i - 0.5)/N, normalized by Q95 - Q05."""
    import numpy as np
    from scipy import stats

    code = (
        "import json, sys, numpy as np\n"
        "from calft.targets import declared\n"
        "from calft.evaluation.metrics import prompt_scores\n"
        "from calft.evaluation.parse import in_support\n"
        "spec = json.loads(sys.argv[1])\n"
        "spec['support'].setdefault('high', None); spec.setdefault('train', None)\n"
        "declared.register({'logarithmic': spec})\n"
        "values = np.array([1.0, 2.0, 1.0, 0.0, 2.5, 7.0, float('nan')])\n"
        "valid = in_support(values, 'logarithmic', {'p': 0.6})\n"
        "print(json.dumps({'valid': valid.tolist(), **prompt_scores(values, valid, 'logarithmic', {'p': 0.6})}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, json.dumps(DECLARED["logarithmic"])], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    scored = json.loads(result.stdout)
    assert scored["valid"] == [True, True, True, False, False, True, False]
    law, kept = stats.logser(0.6), np.array([1.0, 1.0, 2.0, 7.0])
    quantiles = law.ppf((np.arange(1, 5) - 0.5) / 4)
    w1 = float(np.mean(np.abs(np.sort(kept) - quantiles)))
    assert scored["valid_rate"] == pytest.approx(4 / 7)
    assert scored["w1"] == pytest.approx(w1)
    assert scored["normalized_w1"] == pytest.approx(w1 / (law.ppf(0.95) - law.ppf(0.05)))


def test_invalid_family_declarations_stop_before_any_job_naming_the_key(micro_config):
    import copy

    from calft.config import ConfigError, validate

    cases = {
        "scipy": ("halfnormal", "families.bad.scipy: 'halfnormal' is not a distribution of scipy.stats"),
        "parameters": ({"sigma": "sigma"}, "families.bad.parameters: scipy.stats.halfnorm does not take 'sigma'"),
        "train": ({"sigma": [0.5, 0.0]}, "families.bad.train: scipy.stats.halfnorm is not a valid law at sigma=0"),
    }
    for key, (value, expected) in cases.items():
        spec = copy.deepcopy(DECLARED["half_normal"]) | {key: value}
        with pytest.raises(ConfigError) as refused:
            validate(micro_config(families={"bad": spec}))
        assert expected in str(refused.value), key
    degenerate = copy.deepcopy(DECLARED["logarithmic"]) | {"test": [{"p": 0.0001}]}
    with pytest.raises(ConfigError, match=r"families.bad_log.test\[0\]: the law at p=0.0001 is degenerate"):
        validate(micro_config(families={"bad_log": degenerate}))
    with pytest.raises(ConfigError, match="families.laplace: 'laplace' is a built-in family"):
        validate(micro_config(families={"laplace": DECLARED["half_normal"]}))


def test_a_hub_adapter_is_planned_as_a_pinned_download_then_an_import(tmp_path, micro_config):
    import yaml

    config = micro_config(adapters={"hubby": {"model": "smol", "hub": "acme/tiny-lora", "revision": "1" * 40}})
    config["adapters"]["hubby"]["trust"] = True
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    plan = run_snakemake("-n", "-p", "results/smol/hubby/adapter", "--configfile", "config.yaml", cwd=tmp_path)
    printed = plan.stdout
    assert re.search(r"^download_hub_adapter\s+1$", printed, re.M) and re.search(r"^import_adapter\s+1$", printed, re.M)
    assert '"source": "acme/tiny-lora", "revision": "' + "1" * 40 + '", "files": "adapter"' in printed
    assert "--source resources/adapters/hubby.json" in printed
