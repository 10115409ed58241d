# Structured-sampling evaluation (calft.evaluation): N generations per evaluation prompt for base,
# each adapter and SSOT prompting of the base model, parsed and judged; per-prompt valid rate and
# normalized W1 (on CPU); the trie logit KL, its 4-path estimate and optionally its exact value.


rule sample:
    input:
        unpack(evaluation_inputs),
    output:
        layout.SAMPLES,
    params:
        **EVALUATED_MODEL_PARAMS,
        sampling=lambda wildcards: generation_settings(SAMPLING, wildcards),
        ssot=ssot_option,
    log:
        "logs/sample/{model}/{method}/{prompt_set}.log",
    benchmark:
        "results/benchmarks/sample/{model}/{method}/{prompt_set}.tsv"
    threads: 1
    resources:
        gpu=SAMPLING["gpus"],
        mem_mb=32000,
        runtime=120,
    conda:
        "../../envs/gpu.yaml"
    shell:
        "HF_HUB_OFFLINE=1 calft sample --model-dir {params.model_dir:q} {params.adapter} "
        "--model-config {params.model_config:q} --sampling {params.sampling:q} --targets {input.targets:q} "
        "{params.ssot} --output {output:q} > {log:q} 2>&1"


rule score:
    input:
        samples=layout.SAMPLES,
        targets=lambda wildcards: targets_file(wildcards.prompt_set, TARGETS["eval_max_bins"]),
    output:
        layout.SCORES,
    log:
        "logs/score/{model}/{method}/{prompt_set}.log",
    benchmark:
        "results/benchmarks/score/{model}/{method}/{prompt_set}.tsv"
    resources:
        mem_mb=4000,
        runtime=10,
    conda:
        "../../envs/cpu.yaml"
    shell:
        "calft score --samples {input.samples:q} --targets {input.targets:q} --output {output:q} > {log:q} 2>&1"


rule logit_kl:
    input:
        unpack(evaluation_inputs),
        tries=lambda wildcards: tries_file(MODELS[wildcards.model]["tokenizer"], wildcards.prompt_set,
                                           TARGETS["eval_max_bins"]),
    output:
        layout.LOGIT_KL,
    params:
        **EVALUATED_MODEL_PARAMS,
        paths=SAMPLING["logit_kl_paths"],
        seed=SAMPLING["seed"],
        exact="--exact" if SAMPLING["logit_kl_exact"] else "",
    log:
        "logs/logit_kl/{model}/{method}/{prompt_set}.log",
    benchmark:
        "results/benchmarks/logit_kl/{model}/{method}/{prompt_set}.tsv"
    threads: 1
    resources:
        gpu=SAMPLING["gpus"],
        mem_mb=32000,
        runtime=60,
    conda:
        "../../envs/gpu.yaml"
    shell:
        "HF_HUB_OFFLINE=1 calft logit-kl --model-dir {params.model_dir:q} {params.adapter} "
        "--model-config {params.model_config:q} --tries {input.tries:q} --targets {input.targets:q} "
        "--paths {params.paths:q} --seed {params.seed:q} {params.exact} --output {output:q} > {log:q} 2>&1"
