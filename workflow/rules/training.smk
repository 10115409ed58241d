# Training (calft.training): the LoRA adapter of each trained method (calft.methods), one job per
# (model, method) and training variant (calft.variants; none: the top-level setting). With more
# than one GPU the job launches torchrun (DDP) on its node. A rerun resumes from
# results/<model>/<method>[~<variant>]/checkpoints. One rule per trained method, train_<method>, so
# that a cluster profile can give each its own resources; they differ in their time limit only.
# Every adapter carries a model card (README.md); `snakemake --cores 1 release` writes each trained
# adapter with its card's headline metrics into results/release/<model>/<method>/, a folder to publish.


localrules:
    release_adapter,
    release,


for trained in TRAINED:

    rule:
        name:
            f"train_{trained}"
        input:
            unpack(train_inputs),
        output:
            adapter=directory(layout.ADAPTER),
            train_log=layout.TRAIN_LOG,
        wildcard_constraints:
            method=re.escape(trained),
        params:
            model=model_paths,
            settings=job_settings(f"train_{trained}"),
            launcher=train_launcher,
            tries=tries_option,
            checkpoints=layout.CHECKPOINTS,
        log:
            "logs/train/{model}/{method}{variant}.log",
        benchmark:
            "results/benchmarks/train/{model}/{method}{variant}.tsv"
        threads: 1
        priority: 10  # the critical path: training starts as soon as its targets exist
        resources:
            gpu=TRAINING["gpus"],
            mem_mb=64000,
            runtime=METHODS[trained].training.runtime,
        conda:
            "../../envs/gpu.yaml"
        shell:
            "{params.launcher} train --settings {params.settings:q} {params.model} --targets {input.targets:q} "
            "{params.tries} --adapter {output.adapter:q} --train-log {output.train_log:q} "
            "--checkpoints {params.checkpoints:q} --threads {threads} > {log:q} 2>&1"


rule release_adapter:
    input:
        unpack(release_inputs),
    output:
        directory(layout.RELEASE),
    params:
        base_results=lambda wildcards, input: " ".join(["--base-results", *map(shlex.quote, input.base_results)])
        if input.base_results else "",
    log:
        "logs/release/{model}/{method}{variant}.log",
    benchmark:
        "results/benchmarks/release/{model}/{method}{variant}.tsv"
    conda:
        "../../envs/cpu.yaml"
    shell:
        "calft release --adapter {input.adapter:q} --results {input.results:q} {params.base_results} --output {output:q} "
        "> {log:q} 2>&1"


rule release:
    input:
        release_targets(),
