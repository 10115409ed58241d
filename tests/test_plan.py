"""`calft plan-cost`: the paper plan's jobs per rule, its GPU-hours equal to Appendix B.1's own figures,
and another plan's scaled per job."""

import re
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT

from calft import plan


def test_gpu_hours_scale_per_job_from_the_paper_plan():
    paper = {"train_soft": 12, "train_hard": 12, "sample": 96, "noveltybench": 36, "logit_kl": 72}
    half = {rule: count // 2 for rule, count in paper.items()}
    hours = {stage: value for stage, _, value, _ in plan.gpu_hours(paper, paper)}
    assert hours == {"soft training": 2.6, "hard training": 26.7, "structured sampling": 4.5, "NoveltyBench": 194.0}
    halved = {stage: value for stage, _, value, _ in plan.gpu_hours(half, paper)}
    assert halved == pytest.approx({stage: value / 2 for stage, value in hours.items()})
    assert "logit_kl" not in {rule for rules, _, _ in plan.APPENDIX_B1.values() for rule in rules}


def test_adapter_disk_follows_the_lora_shapes():
    from calft.config import validate

    config = yaml.safe_load((ROOT / "config.paper.yaml").read_text()) | {"run_models": ["qwen3-8b"]}
    config["training"]["lora_r"] = 16
    validate(config)
    disk = plan.disk_gigabytes(config, {"train_soft": 1})
    # 36 layers x 16 x (4 x 4096 + 2 x 4096 + 2 x 1024) float32 weights, the adapter and its checkpoint
    assert disk["adapters and checkpoints"] == pytest.approx(2 * 36 * 16 * (16384 + 8192 + 2048) * 4 / 1e9)
    assert disk["hub models"] == pytest.approx(8.2 * 2)


def _plan_cost(*args) -> str:
    result = subprocess.run([sys.executable, "-m", "calft.cli", "plan-cost", *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_paper_plan_prints_its_jobs_and_appendix_b1s_hours_and_a_smaller_plan_scales(tmp_path):
    printed = _plan_cost()
    jobs = dict(re.findall(r"^  (\w+)\s+(\d+)$", printed, re.M))
    assert jobs["train_soft"] == jobs["train_hard"] == "12" and jobs["sample"] == "96"
    total = sum(hours for _, hours, _ in plan.APPENDIX_B1.values())
    assert re.search(rf"^  total\s+{total:.1f} h", printed, re.M)
    paper = yaml.safe_load((ROOT / "config.paper.yaml").read_text())
    smaller = tmp_path / "three.yaml"
    smaller.write_text(yaml.safe_dump(paper | {"run_models": ["qwen3-0.6b", "qwen3-8b", "gemma-3-1b-it"]}))
    printed = _plan_cost("--config", str(smaller))
    assert re.search(r"^  hard training\s+3 jobs\s+6\.7 h", printed, re.M)  # 26.7 x 3 / 12
