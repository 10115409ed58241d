# Transfer evaluations (calft.transfer): open-ended random generation for every method that runs it
# (calft.methods: the base model, each adapter, SSOT prompting of the base model); MCQ
# answer-position balance and NoveltyBench for the base model and each adapter.


rule open_ended:
    input:
        unpack(open_ended_inputs),
    output:
        per_prompt=layout.OPEN_ENDED,
        samples=layout.OPEN_ENDED_SAMPLES,
    params:
        model=model_paths,
        ssot=ssot_option,
        settings=job_settings("open_ended"),
    log:
        "logs/open_ended/{model}/{method}{variant}.log",
    benchmark:
        "results/benchmarks/open_ended/{model}/{method}{variant}.tsv"
    threads: 1
    resources:
        gpu=TRANSFER["gpus"],
        mem_mb=32000,
        runtime=120,
    conda:
        "../../envs/gpu.yaml"
    shell:
        "calft open-ended --settings {params.settings:q} {params.model} {params.ssot} --samples {output.samples:q} "
        "--output {output.per_prompt:q} > {log:q} 2>&1"


rule mcq:
    input:
        unpack(model_and_adapter),
    output:
        summary=layout.MCQ,
        samples=layout.MCQ_SAMPLES,
    params:
        model=model_paths,
        settings=job_settings("mcq"),
    log:
        "logs/mcq/{model}/{method}{variant}.log",
    benchmark:
        "results/benchmarks/mcq/{model}/{method}{variant}.tsv"
    threads: 1
    resources:
        gpu=TRANSFER["gpus"],
        mem_mb=32000,
        runtime=120,
    conda:
        "../../envs/gpu.yaml"
    shell:
        "calft mcq --settings {params.settings:q} {params.model} --samples {output.samples:q} "
        "--output {output.summary:q} > {log:q} 2>&1"


localrules:
    download_noveltybench_model,
    fetch_noveltybench_prompts,


rule fetch_noveltybench_prompts:
    output:
        directory(layout.NOVELTY_PROMPTS),
    params:
        settings=job_settings("fetch_noveltybench_prompts"),
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
        evaluator="similarity_model|similarity_tokenizer|reward_model",
    params:
        settings=job_settings("download_noveltybench_model"),
    log:
        "logs/noveltybench/download_{evaluator}.log",
    conda:
        "../../envs/cpu.yaml"
    shell:
        "calft prepare-model --settings {params.settings:q} --output {output:q} > {log:q} 2>&1"


rule noveltybench:
    input:
        unpack(model_and_adapter),
        prompts=NOVELTY_DATA,
        similarity_model=evaluator_inputs("similarity_model"),
        similarity_tokenizer=evaluator_inputs("similarity_tokenizer"),
        reward_model=evaluator_inputs("reward_model"),
    output:
        summary=layout.NOVELTY,
        generations=layout.NOVELTY_GENERATIONS,
    params:
        model=model_paths,
        evaluators=evaluator_options,
        settings=job_settings("noveltybench"),
    log:
        "logs/noveltybench/{model}/{method}{variant}.log",
    benchmark:
        "results/benchmarks/noveltybench/{model}/{method}{variant}.tsv"
    threads: 1
    resources:
        gpu=TRANSFER["gpus"],
        mem_mb=128000,
        runtime=480,
    conda:
        "../../envs/gpu.yaml"
    shell:
        "calft noveltybench --settings {params.settings:q} {params.model} {params.evaluators} --data-dir {input.prompts:q} "
        "--generations {output.generations:q} --output {output.summary:q} > {log:q} 2>&1"
