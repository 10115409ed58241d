# Logit KL against the evaluation tries: the paper's 4-path estimate and the exact expectation (calft.logit_kl).


rule logit_kl:
    input:
        unpack(evaluation_inputs),
        tries=lambda wildcards: tries_file(MODELS[wildcards.model]["tokenizer"], wildcards.prompt_set,
                                           TARGETS["eval_max_bins"]),
    output:
        LOGIT_KL_PATH,
    params:
        model_dir=lambda wildcards: model_source(wildcards.model),
        model_config=lambda wildcards: json.dumps(MODELS[wildcards.model]),
        adapter=adapter_option,
        paths=config["sampling"]["logit_kl_paths"],
        seed=config["sampling"]["seed"],
        exact="--exact" if config["sampling"]["logit_kl_exact"] else "",
    log:
        "logs/logit_kl/{model}/{method}/{prompt_set}.log",
    benchmark:
        "results/benchmarks/logit_kl/{model}/{method}/{prompt_set}.tsv"
    threads: 2
    resources:
        gpu=config["sampling"]["gpus"],
        gpu_model="a100",
        mem_mb=32000,
        runtime=60,
    conda:
        "../../envs/gpu.yaml"
    shell:
        "HF_HUB_OFFLINE=1 OMP_NUM_THREADS={threads} calft logit-kl --model-dir {params.model_dir:q} {params.adapter} "
        "--model-config {params.model_config:q} --tries {input.tries} --targets {input.targets} "
        "--paths {params.paths} --seed {params.seed} {params.exact} --output {output} > {log} 2>&1"
