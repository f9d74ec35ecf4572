# Training: one job trains a group of seeds of a setting (settings.<name>.seeds_per_job,
# default 1) into a temporary bundle; unpack_run copies each seed's files to its results
# folder, and Snakemake deletes the bundle once every seed of the group is unpacked.
# Snakemake cannot give one job a varying list of per-seed outputs, hence the bundle.
rule train_run:
    output:
        temp(directory("results/{setting}/runs/group{group}")),
    log:
        "logs/{setting}/train_run/group{group}.log",
    benchmark:
        "benchmarks/{setting}/train_run/group{group}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        gpu=get_gpu_count,
    params:
        setting="{setting}",
        seeds=get_group_seeds,
        vectorize=get_vectorize,
        task=get_task_name,
        hyper=get_hyperparameters,
        code=script_code("train_run.py"),
    script:
        "../scripts/train_run.py"


# Copies one seed's files out of its group's bundle (only `cp`: the training env, already
# there wherever training ran, serves).
rule unpack_run:
    input:
        get_run_bundle,
    output:
        metrics="results/{setting}/runs/seed{seed}/metrics.parquet",
        model="results/{setting}/runs/seed{seed}/model.safetensors",
    log:
        "logs/{setting}/unpack_run/seed{seed}.log",
    localrule: True
    conda:
        "../../envs/train.yaml"
    params:
        # What decides the seed's files: a change reruns this job, hence its group's
        # training (the bundle is temporary and gone by then).
        task=get_task_name,
        hyper=get_hyperparameters,
        code=script_code("train_run.py"),
    shell:
        "(cp {input}/seed{wildcards.seed}/metrics.parquet {output.metrics}"
        " && cp {input}/seed{wildcards.seed}/model.safetensors {output.model}) 2> {log}"


rule collect_trajectories:
    input:
        get_run_metrics,
    output:
        "results/{setting}/trajectories.parquet",
    log:
        "logs/{setting}/collect_trajectories.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        source=get_source,
        features=get_features,
        convergence=get_convergence,
        code=script_code("collect_trajectories.py"),
    script:
        "../scripts/collect_trajectories.py"
