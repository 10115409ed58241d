# Training (calft.training): soft- and hard-target LoRA adapters, one job per (model, method). With
# more than one GPU the job launches torchrun (DDP) on its node. A rerun resumes from
# results/<model>/<method>/checkpoints. The two rules differ in their method and time limit only.


rule train_soft:
    input:
        unpack(train_inputs),
    output:
        adapter=directory(layout.ADAPTER),
        train_log=layout.TRAIN_LOG,
    wildcard_constraints:
        method="soft",
    params:
        **MODEL_PARAMS,
        launcher=train_launcher,
        tries=tries_option,
        training=json.dumps(TRAINING),
        checkpoints=layout.CHECKPOINTS,
    log:
        "logs/train/{model}/{method}.log",
    benchmark:
        "results/benchmarks/train/{model}/{method}.tsv"
    threads: 1
    priority: 10  # the critical path: training starts as soon as its targets exist
    resources:
        gpu=TRAINING["gpus"],
        mem_mb=64000,
        runtime=240,
    conda:
        "../../envs/gpu.yaml"
    shell:
        "HF_HUB_OFFLINE=1 {params.launcher} train --method {wildcards.method:q} --model-dir {params.model_dir:q} "
        "--model-config {params.model_config:q} --training {params.training:q} --targets {input.targets:q} "
        "{params.tries} --adapter {output.adapter:q} --train-log {output.train_log:q} "
        "--checkpoints {params.checkpoints:q} --threads {threads} > {log:q} 2>&1"


use rule train_soft as train_hard with:
    wildcard_constraints:
        method="hard",
    resources:
        gpu=TRAINING["gpus"],
        mem_mb=64000,
        runtime=720,
