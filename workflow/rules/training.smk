# Training (calft.training): the LoRA adapter of each trained method (calft.methods), one job per
# (model, method) and training variant (calft.variants; none: the top-level setting). With more
# than one GPU the job launches torchrun (DDP) on its node. A rerun resumes from
# results/<model>/<method>[~<variant>]/checkpoints. The two rules differ in their method and time
# limit only.


rule train_soft:
    input:
        unpack(train_inputs),
    output:
        adapter=directory(layout.ADAPTER),
        train_log=layout.TRAIN_LOG,
    wildcard_constraints:
        method="soft",
    params:
        model=model_paths,
        settings=train_settings,
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
        runtime=240,
    conda:
        "../../envs/gpu.yaml"
    shell:
        "{params.launcher} train --settings {params.settings:q} {params.model} --targets {input.targets:q} "
        "{params.tries} --adapter {output.adapter:q} --train-log {output.train_log:q} "
        "--checkpoints {params.checkpoints:q} --threads {threads} > {log:q} 2>&1"


use rule train_soft as train_hard with:
    wildcard_constraints:
        method="hard",
    resources:
        gpu=TRAINING["gpus"],
        mem_mb=64000,
        runtime=720,
