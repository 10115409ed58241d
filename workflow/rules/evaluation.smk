# Structured-sampling evaluation (calft.evaluation): N generations per evaluation prompt for every
# method (calft.methods: the base model, each adapter, SSOT prompting of the base model) and
# training variant, parsed and judged; per-prompt valid rate and normalized W1 (on CPU); the trie
# logit KL, its 4-path estimate and optionally its exact value. Always against the one evaluation
# reference (targets.eval_decimals, eval_max_bins), whatever the adapter was trained on.


rule sample:
    input:
        unpack(evaluation_inputs),
    output:
        layout.SAMPLES,
    params:
        model=model_paths,
        ssot=ssot_option,
        settings=job_settings("sample"),
    log:
        "logs/sample/{model}/{method}{variant}/{prompt_set}.log",
    benchmark:
        "results/benchmarks/sample/{model}/{method}{variant}/{prompt_set}.tsv"
    threads: 1
    resources:
        gpu=SAMPLING["gpus"],
        mem_mb=32000,
        runtime=120,
    conda:
        "../../envs/gpu.yaml"
    shell:
        "calft sample --settings {params.settings:q} {params.model} --targets {input.targets:q} {params.ssot} "
        "--output {output:q} > {log:q} 2>&1"


rule score:
    input:
        samples=layout.SAMPLES,
        targets=lambda wildcards: reference_targets(wildcards.prompt_set),
    output:
        layout.SCORES,
    params:
        tracking=tracking_option,
    log:
        "logs/score/{model}/{method}{variant}/{prompt_set}.log",
    benchmark:
        "results/benchmarks/score/{model}/{method}{variant}/{prompt_set}.tsv"
    resources:
        mem_mb=4000,
        runtime=10,
    conda:
        "../../envs/cpu.yaml"
    shell:
        "calft score --samples {input.samples:q} --targets {input.targets:q} --output {output:q} {params.tracking} "
        "> {log:q} 2>&1"


rule logit_kl:
    input:
        unpack(evaluation_inputs),
        tries=lambda wildcards: reference_tries(MODELS[wildcards.model]["tokenizer"], wildcards.prompt_set),
    output:
        layout.LOGIT_KL,
    params:
        model=model_paths,
        settings=job_settings("logit_kl"),
    log:
        "logs/logit_kl/{model}/{method}{variant}/{prompt_set}.log",
    benchmark:
        "results/benchmarks/logit_kl/{model}/{method}{variant}/{prompt_set}.tsv"
    threads: 1
    resources:
        gpu=SAMPLING["gpus"],
        mem_mb=32000,
        runtime=60,
    conda:
        "../../envs/gpu.yaml"
    shell:
        "calft logit-kl --settings {params.settings:q} {params.model} --tries {input.tries:q} "
        "--targets {input.targets:q} --output {output:q} > {log:q} 2>&1"
