"""The Snakemake workflow: paper DAG through the SLURM profile, lint, invalid configs, a real micro run."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from string import Template

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import as_under_the_profile, run_checked
from conftest import run_snakemake as snakemake

from calft import artifacts

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "Snakefile"
PAPER_MODELS = 12


def _pairs(text: str) -> dict[str, str]:
    """'a=1, b=2' as {'a': '1', 'b': '2'}."""
    return dict(item.split("=", 1) for item in text.split(", ")) if text else {}


def dry_run_jobs(output: str) -> list[dict]:
    """Each job of a dry run: its rule, wildcards and resources, parsed from the printed plan."""
    jobs = []
    for block in re.split(r"\n(?=\[[^\]]+\]\n(?:local)?rule )", output):
        rule = re.search(r"^(?:local)?rule (\w+):", block, re.M)
        if not rule:
            continue
        resources = re.search(r"^\s+resources: (.*)$", block, re.M)
        wildcards = re.search(r"^\s+wildcards: (.*)$", block, re.M)
        inputs = re.search(r"^\s+input: (.*)$", block, re.M)
        outputs = re.search(r"^\s+output: (.*)$", block, re.M)
        jobs.append(
            {
                "rule": rule.group(1),
                "resources": _pairs(resources.group(1) if resources else ""),
                "wildcards": _pairs(wildcards.group(1) if wildcards else ""),
                "inputs": inputs.group(1).split(", ") if inputs else [],
                "outputs": outputs.group(1).split(", ") if outputs else [],
            }
        )
    return jobs


@pytest.fixture(scope="module")
def paper_dry_run(tmp_path_factory):
    """`snakemake all --profile profiles/slurm` as a dry run, the profile as shipped (the README's
    cluster steps), on a checkout without any data: the workflow fetches every model and data set itself."""
    import os

    env = {**os.environ, **SITE}
    result = run_checked(
        [sys.executable, "-m", "snakemake", "all", "-n", "--forceall", "--profile", "profiles/slurm"], cwd=ROOT, env=env
    )
    return dry_run_jobs(result.stdout + result.stderr)


SITE = {"CALFT_SLURM_ACCOUNT": "acct", "CALFT_SLURM_PARTITION": "cpu", "CALFT_SLURM_GPU_PARTITION": "gpu"}


@pytest.mark.parametrize("unset", list(SITE))
def test_a_profile_run_without_an_account_or_partition_stops_before_any_job_naming_it(tmp_path, unset):
    import os

    env = {key: value for key, value in (os.environ | SITE).items() if key != unset}
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--profile", str(ROOT / "profiles" / "slurm"), "all", "-n"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0 and f"set {unset}, " in output and "site.yaml" in output
    assert "Building DAG" not in output


def test_the_site_overlay_fills_what_the_environment_lacks_and_refuses_unknown_keys(tmp_path):
    from calft import slurm
    from calft.errors import UserError

    overlay = tmp_path / "site.yaml"
    overlay.write_text("CALFT_SLURM_ACCOUNT: from-overlay\nCALFT_SLURM_GPU_PARTITION: a100\n")
    environ = {"CALFT_SLURM_ACCOUNT": "from-environment", "CALFT_SLURM_PARTITION": "cpu"}
    slurm.apply_site(["$CALFT_SLURM_ACCOUNT", "${CALFT_SLURM_GPU_PARTITION}", 4000], environ, overlay)
    assert environ["CALFT_SLURM_ACCOUNT"] == "from-environment" and environ["CALFT_SLURM_GPU_PARTITION"] == "a100"
    with pytest.raises(UserError, match="set CALFT_SLURM_PARTITION, the partition of the CPU jobs"):
        slurm.apply_site(["$CALFT_SLURM_PARTITION"], {}, overlay)
    overlay.write_text("CALFT_SLURM_ACCOUT: typo\n")
    with pytest.raises(UserError, match="unknown setting CALFT_SLURM_ACCOUT"):
        slurm.apply_site([], {}, overlay)


def test_no_tracked_file_asks_to_be_edited():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    placeholder = "CHANGE_" + "ME"
    assert [name for name in tracked if placeholder in (ROOT / name).read_text(errors="ignore")] == []


def test_paper_dag_has_the_jobs_of_12_models(paper_dry_run):
    counts = {}
    for job in paper_dry_run:
        counts[job["rule"]] = counts.get(job["rule"], 0) + 1
    paper = yaml.safe_load((ROOT / "config.paper.yaml").read_text())["models"]
    assert len(paper) == PAPER_MODELS
    tokenizers = {m["tokenizer"] for m in paper.values()}
    assert tokenizers == {"qwen3", "gemma3", "llama3", "gpt-oss"}
    assert counts["download_hub_model"] == PAPER_MODELS
    assert counts["discretize"] == 4  # train at 1001 and 16384 bins, unseen and ood at 16384
    assert counts["build_tries"] == 3 * len(tokenizers)  # once per distinct tokenizer, not per model
    built = {
        (j["wildcards"]["tokenizer"], j["wildcards"]["prompt_set"], j["wildcards"]["bins"])
        for j in paper_dry_run
        if j["rule"] == "build_tries"
    }
    assert built == {
        (t, s, b) for t in tokenizers for s, b in [("train", "1001"), ("unseen", "16384"), ("ood", "16384")]
    }
    assert counts["retention"] == counts["perplexity"] == 3 * PAPER_MODELS  # base, soft, hard
    assert counts["retention_data"] == counts["fetch_irt_parameters"] == 1
    assert counts["open_ended"] == 4 * PAPER_MODELS  # base, soft, hard and SSOT prompting
    assert counts["mcq"] == counts["noveltybench"] == 3 * PAPER_MODELS
    assert counts["sample"] == 2 * 4 * PAPER_MODELS  # two prompt sets, SSOT included
    assert counts["download_noveltybench_model"] == 3  # classifier, its tokenizer, reward model
    assert counts["fetch_paloma"] == counts["fetch_noveltybench_prompts"] == 1


def test_the_paper_config_reproduces_the_reference_inputs():
    """Every calft improvement that changes a model's inputs or targets is off in config.paper.yaml."""
    from calft import config

    paper = yaml.safe_load((ROOT / "config.paper.yaml").read_text())
    config.validate(paper)
    assert paper["prompts"]["number_format"] == "reference"
    assert paper["training"]["hard_group_size"] == 1 and paper["training"]["order"] == "reference"
    assert paper["perplexity"]["prepend_bos"] is False
    assert paper["transfer"]["noveltybench"]["reward_add_special_tokens"] is True
    assert paper["sampling"]["stop_invalid"] is False and paper["transfer"]["mcq"]["stop_unparseable"] is False
    terminators = {"qwen3": "<|im_end|>", "gemma3": "<eos>", "llama3": "<|eot_id|>", "gpt-oss": "<|return|>"}
    for name, model in paper["models"].items():
        assert model["add_special_tokens"] is True, name
        assert model["terminator"] == terminators[model["tokenizer"]], name
        assert re.fullmatch(r"[0-9a-f]{40}", model["revision"]), name


def test_paper_jobs_get_the_profile_resources(paper_dry_run):
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    defaults, per_rule = profile["default-resources"], profile["set-resources"]
    model_rules = {
        "train_soft",
        "train_hard",
        "sample",
        "logit_kl",
        "retention",
        "perplexity",
        "open_ended",
        "mcq",
        "noveltybench",
    }
    checked = set()
    for job in paper_dry_run:
        if job["rule"] not in per_rule:
            continue
        expected = {**defaults, **per_rule[job["rule"]]}
        for key, value in expected.items():
            assert job["resources"][key] == Template(str(value)).substitute(SITE), (job["rule"], key)
        checked.add(job["rule"])
    assert checked >= model_rules | {"discretize", "build_tries"}, (
        checked
    )  # every GPU stage, as the SLURM run omits some


def test_profile_gpu_settings():
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    resources = profile["set-resources"]
    for rule in ("train_soft", "train_hard"):
        assert resources[rule]["gpu"] == 4 and resources[rule]["gpu_model"] == "a100"
    for rule in ("sample", "logit_kl", "retention", "perplexity"):
        assert resources[rule]["gpu"] == 1
    for rule, settings in resources.items():
        assert {"mem_mb", "runtime"} <= settings.keys(), rule
    assert profile["executor"] == "slurm" and profile["configfile"] == "config.paper.yaml"
    assert profile["replace-workflow-config"] is True
    from importlib.metadata import version

    from packaging.version import Version

    for plugin, oldest in (
        ("snakemake-executor-plugin-slurm", "2.7.1"),
        ("snakemake-executor-plugin-slurm-jobstep", "0.6.1"),
    ):
        assert Version(version(plugin)) >= Version(oldest), plugin  # what the profile's settings need


def test_lint_is_clean():
    result = snakemake("--lint")  # exits 1 on any lint
    assert "Congratulations" in result.stdout + result.stderr


def _config_file(tmp_path: Path, values: dict) -> Path:
    path = tmp_path / "micro.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_invalid_config_stops_snakemake_before_any_job_naming_the_key(tmp_path, micro_config):
    """The wiring of calft.config into the workflow; the cases themselves are in test_config.py."""
    config = _config_file(
        tmp_path, micro_config(**{"prompts.train_families": ["gaussian", "gausian"], "sampling.num_samples": 100})
    )
    config.write_text(config.read_text().replace("num_samples: 100", "num_samples: 100.0"))
    result = snakemake("-n", "--directory", str(tmp_path), "--configfile", str(config), check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "invalid calft config" in output and "sampling.num_samples: 100.0 is not of type 'integer'" in output
    config.write_text(config.read_text().replace("num_samples: 100.0", "num_samples: 100"))
    result = snakemake("-n", "--directory", str(tmp_path), "--configfile", str(config), check=False)
    assert "prompts.train_families: 'gausian' is unknown" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / "resources").exists()


def test_the_report_reads_exactly_the_inputs_of_the_aggregate_rule(paper_dry_run):
    from calft.report.items import report_inputs
    from calft.report.settings import ReportSelection

    paper = yaml.safe_load((ROOT / "config.paper.yaml").read_text())
    (aggregate,) = [job for job in paper_dry_run if job["rule"] == "aggregate"]
    selection = ReportSelection.from_dict(
        dict(
            models=list(paper["models"]),
            methods=["base", "soft", "hard", "ssot"],
            prompt_sets=["unseen", "ood"],
            evaluations=["retention", "perplexity", "open_ended", "mcq", "noveltybench"],
        )
    )
    read = {str(path) for paths in report_inputs(selection, "results").values() for path in paths.values()}
    assert set(aggregate["inputs"]) == read | {"results/targets/ood/d5_b16384.parquet"}


def _plan(tmp_path: Path, config: dict, *targets: str) -> list[dict]:
    path = _config_file(tmp_path, config)
    result = snakemake(*targets, "-n", "--forceall", "--directory", str(tmp_path), "--configfile", str(path))
    return dry_run_jobs(result.stdout + result.stderr)


def test_the_training_decimals_never_move_the_evaluation_reference(tmp_path, micro_config):
    config = micro_config(
        **{"targets.decimals": 3, "ablations.variants": {"soft-d5": {"method": "soft", "decimals": 5}}}
    )
    jobs = _plan(tmp_path, config, "all", "ablations")
    reference = {"targets": "results/targets/ood/d2_b100.parquet", "tries": "results/tries/smollm2/ood/d2_b100.parquet"}
    evaluations = [job for job in jobs if job["rule"] in ("sample", "score", "logit_kl")]
    assert {job["wildcards"]["variant"] for job in evaluations} == {"", "~soft-d5"}
    for job in evaluations:
        assert reference["targets"] in job["inputs"], job
        assert job["rule"] != "logit_kl" or reference["tries"] in job["inputs"], job
    trained = {
        (job["rule"], job["wildcards"]["variant"]): job["inputs"] for job in jobs if job["rule"].startswith("train")
    }
    assert "results/targets/train/d3_b50.parquet" in trained["train_soft", ""]
    assert "results/tries/smollm2/train/d5_b50.parquet" in trained["train_soft", "~soft-d5"]
    assert "results/targets/train/d3_b100.parquet" in trained["train_hard", ""]


def test_a_variant_folder_of_another_method_is_refused(tmp_path, micro_config):
    path = _config_file(tmp_path, micro_config())
    result = snakemake(
        "results/smol/hard~soft-d3/adapter", "-n", "--directory", str(tmp_path), "--configfile", str(path), check=False
    )
    assert result.returncode != 0 and "variant 'soft-d3' varies soft, not hard" in result.stdout + result.stderr


def test_the_paper_ablations_plan_both_grids_on_the_two_models_and_stay_out_of_all(monkeypatch):
    for name, value in SITE.items():  # the profile's account and partitions, as a user sets them
        monkeypatch.setenv(name, value)
    paper = yaml.safe_load((ROOT / "config.paper.yaml").read_text())["ablations"]
    assert paper["models"] == ["qwen3-14b", "gemma-3-12b-it"]
    grids = {
        name: (
            v["method"],
            v.get("decimals", 5),
            v.get("max_bins", {"soft": 1001, "hard": 16384}[v["method"]]),
            v.get("samples_per_prompt_per_epoch", 16),
            v.get("epochs", 2),
        )
        for name, v in paper["variants"].items()
    }
    soft = {(d, b) for method, d, b, _, _ in grids.values() if method == "soft"} | {(5, 1001)}
    assert soft == {(d, b) for d in (2, 3, 5) for b in (1001, 4096, 16384)}  # Table 25: the full grid
    hard = sorted((d, b, spp, epochs) for method, d, b, spp, epochs in grids.values() if method == "hard")
    assert hard == sorted(
        [
            (3, 1001, 16, 2),
            (2, 1001, 16, 2),
            (5, 1001, 16, 2),
            (3, 4096, 16, 2),
            (3, 16384, 16, 2),
            (3, 1001, 8, 4),
            (3, 1001, 32, 1),
            (5, 16384, 8, 4),
            (5, 16384, 32, 1),
        ]
    )  # Table 26
    planned = snakemake(
        "--profile", str(ROOT / "profiles" / "slurm"), "ablations", "-n", "--forceall", "--quiet", "rules"
    )
    counts = {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)$", planned.stdout, re.M)}
    assert counts["train_soft"] == 2 * 9 and counts["train_hard"] == 2 * 10  # the variants and the finals
    assert counts["sample"] == counts["score"] == 2 * 19 * 2 and counts["logit_kl"] == 2 * 17 * 2
    assert counts["construction_cost"] == counts["aggregate_ablations"] == 1 and "aggregate" not in counts


def test_all_plans_no_variant(paper_dry_run):
    assert all(not job["wildcards"].get("variant") for job in paper_dry_run)
    assert not {"construction_cost", "aggregate_ablations"} & {job["rule"] for job in paper_dry_run}


def test_an_embedded_model_is_prepared_by_its_rule_once(tmp_path, micro_config):
    config = _config_file(tmp_path, micro_config())
    planned = snakemake("-n", "--directory", str(tmp_path), "--configfile", str(config), "--quiet", "rules")
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", planned.stdout, re.M))
    assert counts["prepare_embedded_model"] == "1" and int(counts["total"]) > 30


@pytest.mark.slow
def test_micro_ablations_train_each_variant_into_its_own_folder_against_the_one_reference(local_micro_run):
    """The micro config's two variants (soft d=3, hard 4 x 2) beside the final settings: their own
    adapters and evaluations, the reference unchanged, Tables 24-26 and Figure 14; a new variant then
    plans only its own jobs and overwrites nothing."""
    _, work = local_micro_run
    results = work / "results" / "smol"
    soft, hard = (
        artifacts.read_record(results / "soft~soft-d3" / "adapter"),
        artifacts.read_record(results / "hard~hard-4x2" / "adapter"),
    )
    assert soft["config"]["targets"]["decimals"] == 3 and soft["config"]["training"]["soft_epochs"] == 1
    assert hard["config"]["training"]["hard_epochs"] == 2
    assert artifacts.read_record(results / "hard" / "adapter")["config"]["training"]["hard_epochs"] == 1
    assert len(pd.read_parquet(results / "hard~hard-4x2" / "train_log.parquet")) == 2 * len(
        pd.read_parquet(results / "hard" / "train_log.parquet")
    )
    for run in ("soft", "soft~soft-d3", "hard", "hard~hard-4x2"):
        for kind in ("scores", "logit_kl"):
            recorded = artifacts.recorded_reference(results / run / kind / "ood.parquet")
            assert (recorded["decimals"], recorded["max_bins"]) == (2, 100), (run, kind)  # eval_*, not the training d
    assert not (results / "base~soft-d3").exists() and not list(results.glob("ssot~*"))

    ablations = work / "results" / "ablations"
    table25 = pd.read_csv(ablations / "table25_soft_ablation.csv")
    table26 = pd.read_csv(ablations / "table26_hard_ablation.csv")
    assert list(table25.variant) == ["final", "soft-d3"] and list(table25.d) == [2, 3]
    assert list(table26.variant) == ["final", "hard-4x2"] and list(table26["total draws"]) == [4, 8]
    summary = pd.read_csv(work / "results" / "tables" / "summary.csv").set_index(["prompt_set", "method"])
    assert table25["smol ood W1"][0] == pytest.approx(summary.loc[("ood", "soft"), "normalized_w1"], nan_ok=True)
    table24 = pd.read_csv(ablations / "table24_construction_cost.csv")
    assert (
        len(table24) == 4
        and (table24.prompts == 4).all()
        and list(table24.row.fillna("")).count("evaluation reference") == 1
    )
    assert "final ★" in (ablations / "table26_hard_ablation.md").read_text()
    assert (ablations / "figure14_ood_samples_by_decimals_smol.png").stat().st_size > 1000

    config = yaml.safe_load((work / "micro.yaml").read_text())
    config["ablations"]["variants"]["soft-b100"] = {"method": "soft", "max_bins": 100}
    (work / "more.yaml").write_text(yaml.safe_dump(config))
    planned = snakemake(
        "ablations",
        "-n",
        "--rerun-triggers",
        "mtime",
        "--directory",
        str(work),
        "--configfile",
        str(work / "more.yaml"),
    )  # as the fixture ran `ablations`
    jobs = dry_run_jobs(planned.stdout + planned.stderr)
    assert {job["rule"] for job in jobs} == {
        "build_tries",
        "train_soft",
        "sample",
        "score",
        "logit_kl",
        "aggregate_ablations",
        "ablations",
    }
    assert all(job["wildcards"]["variant"] == "~soft-b100" for job in jobs if "variant" in job["wildcards"])
    written = [path for job in jobs if job["rule"] != "aggregate_ablations" for path in job["outputs"]]
    assert written and not [path for path in written if (work / path).exists()]


@pytest.mark.slow
def test_every_md_and_tex_file_of_the_micro_run_is_well_formed(local_micro_run):
    from well_formed import file_problems

    _, work = local_micro_run
    written = {path.name for suffix in ("md", "tex") for path in (work / "results").rglob(f"*.{suffix}")}
    assert {"transfer.tex", "table5_families.tex", "table24_construction_cost.tex", "index.md"} <= written
    assert file_problems(work / "results") == {}


@pytest.mark.slow
def test_an_edited_ssot_instruction_reruns_the_ssot_jobs_and_nothing_else(local_micro_run):
    """The instruction files are the SSOT jobs' inputs: results record their checksum, and a new
    wording plans exactly the SSOT jobs that read it, their scores and the report."""
    from calft.modeling import ssot

    _, work = local_micro_run
    samples = artifacts.read_provenance(work / "results" / "smol" / "ssot" / "samples" / "ood.parquet")["config"]
    calft_wording = ssot.read(ssot.instruction_file({}, "numeric"), "numeric")
    assert samples["ssot_instruction"] == calft_wording.record()
    base = artifacts.read_provenance(work / "results" / "smol" / "base" / "samples" / "ood.parquet")["config"]
    assert base["ssot_instruction"] is None

    config = yaml.safe_load((work / "micro.yaml").read_text())
    (work / "numeric.txt").write_text("Write a random seed string, then answer between <answer> tags.\n")
    config["transfer"]["ssot"]["instructions"] = {"numeric": "numeric.txt"}  # relative to the working folder
    (work / "ssot.yaml").write_text(yaml.safe_dump(config))
    planned = snakemake("all", "-n", "--directory", str(work), "--configfile", str(work / "ssot.yaml"))
    jobs = dry_run_jobs(planned.stdout + planned.stderr)
    assert {job["rule"] for job in jobs} == {"sample", "score", "aggregate", "all"}
    assert {job["wildcards"]["method"] for job in jobs if job["wildcards"]} == {"ssot"}
    assert all("numeric.txt" in job["inputs"] for job in jobs if job["rule"] == "sample")


@pytest.mark.slow
def test_the_micro_run_builds_targets_and_tries_for_the_models_tokenizer(local_micro_run, tiny_model_dir):
    """The micro workflow (training launched as under the SLURM profile, over 4 gloo ranks) on a local
    model folder, used where it is: targets and tries with their logs, benchmarks and tokenizer fingerprint."""
    _, tmp_path = local_micro_run
    model = tiny_model_dir
    assert not (tmp_path / "resources" / "models").exists()  # a model with a path is used where it is
    tries = tmp_path / "results" / "tries" / "smollm2" / "train" / "d2_b50.parquet"
    targets = pd.read_parquet(tmp_path / "results" / "targets" / "train" / "d2_b50.parquet")
    assert set(targets["family"]) == {"gaussian", "binomial"} and targets["prompt_id"].nunique() == 2
    nodes = pd.read_parquet(tries)
    assert set(nodes["prompt_id"]) == set(targets["prompt_id"])
    assert (tmp_path / "results" / "targets" / "train" / "d2_b100.parquet").exists()
    assert (tmp_path / "results" / "tries" / "smollm2" / "ood" / "d2_b100.parquet").exists()

    from calft.modeling.tokenizer import fingerprint, load_fast_tokenizer

    info = artifacts.read_provenance(tries)
    assert info["config"]["fingerprint"] == fingerprint(load_fast_tokenizer(str(model)).backend_tokenizer, "<|im_end|>")
    for log in ["discretize/train_d2_b50.log", "build_tries/smollm2/train_d2_b50.log"]:
        assert (tmp_path / "logs" / log).exists()
    assert (tmp_path / "results" / "benchmarks" / "build_tries" / "smollm2" / "train_d2_b50.tsv").exists()


@pytest.mark.slow
def test_the_micro_run_trains_each_method_for_its_steps(local_micro_run):
    """Soft and hard adapters with their training logs: 2 prompts x 1 path and 2 prompts x 4 draws, 4 a step."""
    _, tmp_path = local_micro_run
    for method, steps in (("soft", 1), ("hard", 2)):  # 2 prompts x 1 path, 2 prompts x 4 draws; 4 per step
        assert (tmp_path / "results" / "smol" / method / "adapter" / "adapter_model.safetensors").exists()
        log = pd.read_parquet(tmp_path / "results" / "smol" / method / "train_log.parquet")
        assert list(log.step) == list(range(1, steps + 1)) and log.loss.notna().all()
        assert (tmp_path / "logs" / "train" / "smol" / f"{method}.log").exists()


@pytest.mark.slow
def test_the_micro_run_samples_scores_and_tabulates_structured_sampling(local_micro_run):
    """Samples, scores and logit KL of every method, and the structured-sampling table."""
    _, tmp_path = local_micro_run
    for method in ("base", "soft", "hard"):
        samples = pd.read_parquet(tmp_path / "results" / "smol" / method / "samples" / "ood.parquet")
        assert len(samples) == 18 * 3 and set(samples.columns) >= {
            "prompt_id",
            "sample_idx",
            "seed",
            "text",
            "value",
            "valid",
        }
        scores = pd.read_parquet(tmp_path / "results" / "smol" / method / "scores" / "ood.parquet")
        kl = pd.read_parquet(tmp_path / "results" / "smol" / method / "logit_kl" / "ood.parquet")
        assert len(scores) == len(kl) == 18 and (kl.logit_kl > 0).all()
    table = pd.read_csv(tmp_path / "results" / "tables" / "structured_ood.csv", header=[0, 1], index_col=0)
    values = table[["normalized_w1", "logit_kl", "valid_rate"]]
    assert list(table.index) == ["smol"] and values.shape[1] == 9  # 3 metrics x base, soft, hard
    low, high = table["valid_rate_low"], table["valid_rate_high"]  # each cell's interval and counts beside it
    assert ((low <= table["valid_rate"]) & (table["valid_rate"] <= high)).all().all()
    assert (table["prompts"] == 18).all().all() and (table["valid_samples"] <= 18 * 2).all().all()
    markdown = (tmp_path / "results" / "tables" / "structured_ood.md").read_text()
    assert "| smol |" in markdown and "W1 (norm.) base" in markdown


@pytest.mark.slow
def test_the_micro_run_measures_retention_and_perplexity(local_micro_run):
    """Retention per task and perplexity per slice of every method, and their tables."""
    _, tmp_path = local_micro_run
    for method in ("base", "soft", "hard"):
        tasks = pd.read_parquet(tmp_path / "results" / "smol" / method / "retention.parquet")
        assert list(tasks.task) == ["arithmetic", "arithmetic", "multiple_choice"] and (tasks["items"] == 2).all()
        slices = pd.read_parquet(tmp_path / "results" / "smol" / method / "perplexity.parquet")
        assert list(slices.slice) == ["pydoc_topics", "stdlib_docstrings", "all"] and (slices.perplexity > 1).all()
    table2 = pd.read_csv(tmp_path / "results" / "tables" / "retention_perplexity.csv", header=[0, 1], index_col=0)
    values = table2[["retention", "perplexity", "retention_low", "retention_high"]]
    assert list(table2.index) == ["smol"] and values.shape[1] == 12 and values.notna().all().all()
    assert "mean accuracy base" in (tmp_path / "results" / "tables" / "retention_perplexity.md").read_text()
    assert "smol / pydoc_topics" in (tmp_path / "results" / "tables" / "perplexity_slices.md").read_text()
    assert "smol / arithmetic strict" in (tmp_path / "results" / "tables" / "retention_tasks.md").read_text()


@pytest.mark.slow
def test_the_micro_run_measures_transfer_and_the_ssot_baseline(local_micro_run):
    """Open-ended, MCQ and SSOT results of every method, Table 1 and the SSOT table."""
    _, tmp_path = local_micro_run
    for method in ("base", "soft", "hard", "ssot"):
        open_ended = pd.read_parquet(tmp_path / "results" / "smol" / method / "transfer" / "open_ended.parquet")
        assert list(open_ended.prompt_index) == [0, 101] and (open_ended.samples == 2).all()
        assert open_ended.support_size.isna().all() == (method == "ssot")
    for method in ("base", "soft", "hard"):
        mcq = pd.read_parquet(tmp_path / "results" / "smol" / method / "transfer" / "mcq.parquet")
        assert mcq.generations.item() == 2
    ssot = pd.read_parquet(tmp_path / "results" / "smol" / "ssot" / "scores" / "ood.parquet")
    assert len(ssot) == 18 and (ssot.num_samples == 2).all()
    table1 = pd.read_csv(tmp_path / "results" / "tables" / "transfer.csv", header=[0, 1], index_col=0)
    measures = ["support_size", "unique_fraction", "unique_fraction_insensitive", "tv", "parse_rate"]
    assert list(table1.index) == ["smol"] and table1[measures].shape[1] == 15  # 5 measures x base, soft, hard
    assert {"support_size_low", "unique_fraction_high", "parse_rate_low", "answer_share"} <= set(
        table1.columns.levels[0]
    )
    assert "W1 (norm.) ssot" in (tmp_path / "results" / "tables" / "ssot_ood.md").read_text()


@pytest.mark.slow
def test_the_micro_run_logs_progress_lines_with_an_eta_and_no_carriage_returns(local_micro_run):
    """Every job's log is lines: calft's progress with the ETA, never a library's redrawn bar."""
    _, tmp_path = local_micro_run
    logs = {path: path.read_text() for path in (tmp_path / "logs").rglob("*.log")}
    assert [path for path, text in logs.items() if "\r" in text] == []
    for job in ("train", "sample", "open_ended", "mcq", "retention", "perplexity", "logit_kl"):
        assert any(" (100%), " in text and "ETA" in text for path, text in logs.items() if job in path.parts), job


@pytest.mark.slow
def test_the_micro_run_draws_every_figure_and_appendix_table(local_micro_run):
    """The figures, Tables 3-5 and the appendix tables of the micro run."""
    _, tmp_path = local_micro_run
    for figure in (
        "figure2_family_median_w1.png",
        "figure3_ood_samples_smol.png",
        "per_family_ood_logit_kl.png",
        "figure8_ood_samples_ssot_smol.png",
        "figure9_open_ended_per_prompt.png",
        "figure10_open_ended_frequencies_smol.png",
        "figure11_retention_per_task.png",
        "figure12_paloma_perplexity.png",
        "figure13_paloma_bits_per_byte.png",
    ):
        assert (tmp_path / "results" / "figures" / figure).stat().st_size > 1000, figure
    tables = tmp_path / "results" / "tables"
    assert "| lora_r | 16 |" in (tables / "table3_shared_hyperparameters.md").read_text()
    table4 = pd.read_csv(tables / "table4_method_hyperparameters.csv", dtype=str).set_index("hyperparameter")
    assert table4.loc["training max bins", "soft"] == "50" and table4.loc["epochs", "hard"] == "1"
    assert len(pd.read_csv(tables / "table5_families.csv")) == 30
    cost = pd.read_csv(tables / "appendix_b1_training_cost.csv").set_index("method")
    assert (
        cost.loc["soft", "runs"] == 1
        and np.isnan(cost.loc["soft", "gpu_hours"])
        and "cpu" in cost.loc["soft", "devices"]
    )
    stages = pd.read_csv(tables / "appendix_b1_stage_wallclock.csv").set_index("stage")
    assert stages.loc["sample", "jobs"] >= 4 and stages.loc["train", "wall_hours"] > 0
    counts = pd.read_csv(tables / "appendix_d4_open_ended_counts.csv")
    assert set(counts.method) == {"soft", "hard"} and (counts.pairs == 2).all()
    assert (counts[["higher", "equal", "lower"]].sum(axis=1) == counts.pairs).all()
    assert (tables / "table21_retention_tasks_model_mean.md").exists() and (
        tables / "table23_perplexity_slices_model_mean.tex"
    ).exists()


@pytest.mark.slow
def test_a_finished_run_has_nothing_to_do_and_its_tables_rebuild_from_parquet_alone(local_micro_run):
    """Nothing to do again; tables, figures and the ablation tables rebuilt with no model and no GPU rule; a report."""
    _, tmp_path = local_micro_run
    config = tmp_path / "micro.yaml"
    launch = as_under_the_profile()
    again = snakemake("--cores", "2", *launch, "--directory", str(tmp_path), "--configfile", str(config))
    assert "Nothing to be done" in again.stdout + again.stderr

    # tables and figures rebuild from the cached parquet alone: no model, no GPU rule
    shutil.rmtree(tmp_path / "resources")
    shutil.rmtree(tmp_path / "results" / "tables")
    shutil.rmtree(tmp_path / "results" / "figures")
    rebuilt = snakemake(
        "tables",
        "--allowed-rules",
        "aggregate",
        "--cores",
        "1",
        *launch,
        "--directory",
        str(tmp_path),
        "--configfile",
        str(config),
    )
    jobs = re.findall(r"^(\w+)\s+\d+$", rebuilt.stdout + rebuilt.stderr, re.M)
    assert "aggregate" in jobs and not {
        "sample",
        "logit_kl",
        "train_soft",
        "prepare_embedded_model",
        "retention",
        "perplexity",
    } & set(jobs)
    assert (tmp_path / "results" / "tables" / "structured_ood.tex").exists()
    shutil.rmtree(tmp_path / "results" / "ablations")
    rebuilt = snakemake(
        "ablations",
        "--allowed-rules",
        "aggregate_ablations",
        "--cores",
        "1",
        *launch,
        "--directory",
        str(tmp_path),
        "--configfile",
        str(config),
    )
    assert re.findall(r"^(\w+)\s+\d+$", rebuilt.stdout + rebuilt.stderr, re.M)[:1] == ["aggregate_ablations"]
    assert (tmp_path / "results" / "ablations" / "table26_hard_ablation.tex").exists()
    assert (tmp_path / "results" / "tables" / "retention_perplexity.tex").exists()
    report = snakemake(
        "tables",
        "--report",
        str(tmp_path / "report.html"),
        *launch,
        "--directory",
        str(tmp_path),
        "--configfile",
        str(config),
    )
    assert (tmp_path / "report.html").stat().st_size > 10000, report.stderr[-2000:]


@pytest.mark.slow
def test_a_single_target_rebuilds_only_what_it_needs(local_micro_run):
    """A removed tries artifact comes back through build_tries alone."""
    _, tmp_path = local_micro_run
    config = tmp_path / "micro.yaml"
    launch = as_under_the_profile()
    tries = tmp_path / "results" / "tries" / "smollm2" / "train" / "d2_b50.parquet"
    shutil.rmtree(tries)
    single = snakemake(
        "results/tries/smollm2/train/d2_b50.parquet",
        "--cores",
        "2",
        *launch,
        "--directory",
        str(tmp_path),
        "--configfile",
        str(config),
    )
    assert "build_tries" in single.stdout + single.stderr
    assert "discretize" not in re.findall(r"^(\w+)\s+\d+$", single.stdout + single.stderr, re.M)
    assert tries.exists()


def _config_keys() -> set[str]:
    """Every dotted key of the config schema (`transfer.open_ended.enabled`, `methods`, ...)."""
    from calft.settings import schema

    definitions, keys = schema()["$defs"], set()

    def walk(node: dict, prefix: str) -> None:
        node = definitions[node["$ref"].rsplit("/", 1)[1]] if "$ref" in node else node
        for name, child in node.get("properties", {}).items():
            keys.add(prefix + name)
            walk(child, f"{prefix}{name}.")

    walk(schema(), "")
    return keys


def test_retention_and_perplexity_of_the_micro_run_apply_each_adapter(local_micro_run):
    """The `calft retention` and `perplexity` jobs of base and soft: the same items and tokens, other
    numbers through the adapter (recorded in the provenance), accuracy where the offline probes have no IRT."""
    _, work = local_micro_run
    results = work / "results" / "smol"
    tasks = {method: pd.read_parquet(results / method / "retention.parquet") for method in ("base", "soft")}
    examples = {method: pd.read_parquet(results / method / "retention_examples.parquet") for method in ("base", "soft")}
    slices = {method: pd.read_parquet(results / method / "perplexity.parquet") for method in ("base", "soft")}
    assert tasks["base"].gpirt.isna().all() and tasks["base"].accuracy.between(0, 1).all()
    choices = {method: np.stack(frame[frame.kind == "mmlu"].loglikelihoods) for method, frame in examples.items()}
    assert choices["base"].shape == choices["soft"].shape and not np.allclose(choices["base"], choices["soft"])
    assert (slices["base"].tokens == slices["soft"].tokens).all()
    assert not np.array_equal(slices["base"].nll, slices["soft"].nll)  # one training step moves it a little
    for name in ("retention.parquet", "perplexity.parquet"):
        adapter = artifacts.read_provenance(results / "soft" / name)["config"]["adapter"]
        assert adapter["path"] == "results/smol/soft/adapter" and adapter["method"] == "soft"
        assert adapter["weights_sha256"] == artifacts.sha256(results / "soft" / "adapter" / "adapter_model.safetensors")
        assert artifacts.read_provenance(results / "base" / name)["config"]["adapter"] is None
    assert (
        artifacts.read_provenance(results / "soft" / "retention.parquet")["config"]["retention"]["suite"] == "offline"
    )


def test_the_index_lists_every_paper_item_produced_or_explained(local_micro_run):
    """results/tables/index.md: each paper item once, its files there and not empty, or an
    explanation naming the config key that turns it on (the micro run has no NoveltyBench)."""
    from calft.report.items import ITEMS, NO_CONFIG

    paper = [item for item in ITEMS if item.label]  # the others are calft's own outputs

    tables, work = local_micro_run
    first_table = (tables / "index.md").read_text().split("\n\n")[1]  # then calft's own outputs
    rows = [line.split(" | ") for line in first_table.splitlines() if line.startswith("| ")][1:]
    assert [row[0].lstrip("| ") for row in rows] == [item.label for item in paper]
    assert "| training curves: loss and gradient norm" in (tables / "index.md").read_text()
    keys, produced = _config_keys(), set()
    for label, _, files, note in ((row[0].lstrip("| "), *row[1:3], row[3].rstrip(" |")) for row in rows):
        if files != "—":
            for path in re.findall(r"`([^`]+)`", files):
                assert (work / path).stat().st_size > 0, (label, path)
            produced.add(label)
        elif note != NO_CONFIG:
            assert set(re.findall(r"[a-z_]+(?:\.[a-z_]+)*", note)) & keys, (label, note)
    assert {"Tables 11-13", "Tables 14-16", "Tables 17-19", "Table 10", "Figure 1"}.isdisjoint(produced)
    assert produced >= {
        "Figure 2",
        "Figure 14",
        "Table 1",
        "Table 20",
        "Table 24",
        "Table 25",
        "Table 26",
        "Appendix B.1",
        "Appendix D.4",
    }
    outputs = (ROOT / "docs" / "outputs.md").read_text()
    assert all(f"| {item.label} |" in outputs for item in paper)  # the documented index names every item


# Params that hold whole options, built in common.smk with every value passed through shlex.quote.
OPTION_PARAMS = {
    "base_results",
    "evaluators",
    "irt",
    "launcher",
    "model",
    "ood_targets",
    "same_tokenizer",
    "ssot",
    "tokenizer_option",
    "tracking",
    "tries",
}  # options quoted where built


def test_every_value_interpolated_into_a_shell_command_is_quoted():
    for path in (ROOT / "workflow" / "rules").glob("*.smk"):
        for shell in re.findall(r"shell:\n((?:\s+\".*\"\n)+)", path.read_text()):
            for field in re.findall(r"\{([^}]*)\}", shell):
                name = field.removesuffix(":q")
                assert field.endswith(":q") or name == "threads" or name.removeprefix("params.") in OPTION_PARAMS, (
                    f"{path.name}: {{{field}}} is interpolated unquoted"
                )


@pytest.mark.slow
def test_a_hostile_model_path_reaches_the_command_intact_and_runs_nothing(tmp_path, micro_config, tiny_model_dir):
    """A local model folder named with a space and a command substitution: the job gets the path as
    one argument, and the substitution never runs."""
    folder = tmp_path / "model dir $(touch PWNED)"
    shutil.copytree(tiny_model_dir, folder)
    config = _config_file(tmp_path, micro_config(**{"models.smol.path": str(folder)}))
    planned = snakemake("-n", "-p", "--forceall", "--directory", str(tmp_path), "--configfile", str(config))
    commands = [line for line in planned.stdout.splitlines() if "calft build-tries" in line]
    assert commands and all(shlex.split(c)[shlex.split(c).index("--tokenizer") + 1] == str(folder) for c in commands)
    snakemake(
        "results/tries/smollm2/ood/d2_b100.parquet",
        "--cores",
        "2",
        "--directory",
        str(tmp_path),
        "--configfile",
        str(config),
    )
    assert (tmp_path / "results" / "tries" / "smollm2" / "ood" / "d2_b100.parquet").is_dir()
    assert not list(tmp_path.rglob("PWNED")) and not (ROOT / "PWNED").exists()


def test_a_configfile_replaces_the_default_config_with_or_without_the_replace_flag(tmp_path, micro_config):
    """config.yaml's model never joins a run given --configfile (merged, the models of both would run);
    --config alone still changes the default."""
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    config = _config_file(tmp_path, micro_config())
    for flags in ([], ["--replace-workflow-config"]):
        plan = snakemake(
            "all", "-n", "--quiet", "rules", "--directory", str(tmp_path), "--configfile", str(config), *flags
        )
        assert "prepare_embedded_model" in plan.stdout
        printed = snakemake("all", "-n", "--directory", str(tmp_path), "--configfile", str(config), *flags).stdout
        assert "smollm2-135m" not in printed and "results/smol/soft/adapter" in printed
    default = snakemake("all", "-n", "--directory", str(tmp_path), "--config", 'run_models=["smollm2-135m"]').stdout
    assert "results/smollm2-135m/soft/adapter" in default
