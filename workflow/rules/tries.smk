# Token tries over the canonical strings, once per tokenizer shared by several models (calft.tries).
# The output is a folder of parquet parts, one per family, written by parallel workers.


rule build_tries:
    input:
        unpack(tries_inputs),
    output:
        directory(TRIES_PATH),
    params:
        tokenizer=lambda wildcards: model_source(tokenizer_users(wildcards.tokenizer)[0]),
        terminator=lambda wildcards: MODELS[tokenizer_users(wildcards.tokenizer)[0]]["terminator"],
        same_tokenizer=same_tokenizer_options,
    log:
        "logs/build_tries/{tokenizer}/{prompt_set}_d{decimals}_b{bins}.log",
    benchmark:
        "results/benchmarks/build_tries/{tokenizer}/{prompt_set}_d{decimals}_b{bins}.tsv"
    threads: 2
    resources:
        mem_mb=16000,
        runtime=60,
    conda:
        "../../envs/cpu.yaml"
    shell:
        "HF_HUB_OFFLINE=1 calft build-tries --targets {input.targets} --tokenizer {params.tokenizer:q} "
        "--terminator {params.terminator:q} {params.same_tokenizer} --workers {threads} --output {output} "
        "> {log} 2>&1"
