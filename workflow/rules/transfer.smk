# Transfer evaluations (calft.transfer): open-ended random generation for base, each adapter and
# SSOT prompting of the base model; MCQ answer-position balance and NoveltyBench for base and each
# adapter.


rule open_ended:
    input:
        unpack(model_and_adapter),
    output:
        per_prompt=layout.OPEN_ENDED,
        samples=layout.OPEN_ENDED_SAMPLES,
    params:
        **EVALUATED_MODEL_PARAMS,
        settings=lambda wildcards: generation_settings(TRANSFER["open_ended"], wildcards),
        ssot=ssot_option,
    log:
        "logs/open_ended/{model}/{method}.log",
    benchmark:
        "results/benchmarks/open_ended/{model}/{method}.tsv"
    threads: 1
    resources:
        gpu=TRANSFER["gpus"],
        mem_mb=32000,
        runtime=120,
    conda:
        "../../envs/gpu.yaml"
    shell:
        "HF_HUB_OFFLINE=1 calft open-ended --model-dir {params.model_dir:q} {params.adapter} "
        "--model-config {params.model_config:q} --settings {params.settings:q} {params.ssot} "
        "--samples {output.samples:q} --output {output.per_prompt:q} > {log:q} 2>&1"


rule mcq:
    input:
        unpack(model_and_adapter),
    output:
        summary=layout.MCQ,
        samples=layout.MCQ_SAMPLES,
    params:
        **EVALUATED_MODEL_PARAMS,
        settings=json.dumps(TRANSFER["mcq"]),
    log:
        "logs/mcq/{model}/{method}.log",
    benchmark:
        "results/benchmarks/mcq/{model}/{method}.tsv"
    threads: 1
    resources:
        gpu=TRANSFER["gpus"],
        mem_mb=32000,
        runtime=120,
    conda:
        "../../envs/gpu.yaml"
    shell:
        "HF_HUB_OFFLINE=1 calft mcq --model-dir {params.model_dir:q} {params.adapter} "
        "--model-config {params.model_config:q} --settings {params.settings:q} "
        "--samples {output.samples:q} --output {output.summary:q} > {log:q} 2>&1"


localrules:
    download_noveltybench_model,
    fetch_noveltybench_prompts,


rule fetch_noveltybench_prompts:
    output:
        directory(layout.NOVELTY_PROMPTS),
    params:
        settings=json.dumps(NOVELTY),
    log:
        "logs/noveltybench/fetch_prompts.log",
    benchmark:
        "results/benchmarks/noveltybench/fetch_prompts.tsv"
    conda:
        "../../envs/cpu.yaml"
    shell:
        "calft fetch-noveltybench --settings {params.settings:q} --output {output:q} > {log:q} 2>&1"


rule download_noveltybench_model:
    output:
        layout.NOVELTY_EVALUATOR_MARKER,
    wildcard_constraints:
        evaluator="similarity_model|reward_model",
    params:
        model_id=lambda wildcards: NOVELTY[wildcards.evaluator],
    log:
        "logs/noveltybench/download_{evaluator}.log",
    conda:
        "../../envs/cpu.yaml"
    shell:
        "calft prepare-model --source {params.model_id:q} --output {output:q} > {log:q} 2>&1"


rule noveltybench:
    input:
        unpack(model_and_adapter),
        prompts=NOVELTY_DATA,
        similarity=evaluator_inputs("similarity_model"),
        reward=evaluator_inputs("reward_model"),
    output:
        summary=layout.NOVELTY,
        generations=layout.NOVELTY_GENERATIONS,
    params:
        **EVALUATED_MODEL_PARAMS,
        settings=json.dumps(NOVELTY),
    log:
        "logs/noveltybench/{model}/{method}.log",
    benchmark:
        "results/benchmarks/noveltybench/{model}/{method}.tsv"
    threads: 1
    resources:
        gpu=TRANSFER["gpus"],
        mem_mb=128000,
        runtime=480,
    conda:
        "../../envs/gpu.yaml"
    shell:
        "HF_HUB_OFFLINE=1 calft noveltybench --model-dir {params.model_dir:q} {params.adapter} "
        "--model-config {params.model_config:q} --settings {params.settings:q} --data-dir {input.prompts:q} "
        "--generations {output.generations:q} --output {output.summary:q} > {log:q} 2>&1"
