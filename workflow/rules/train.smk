rule train_run:
    output:
        metrics="results/{setting}/runs/seed{seed}/metrics.parquet",
        model="results/{setting}/runs/seed{seed}/model.safetensors",
    log:
        "logs/{setting}/train_run/seed{seed}.log",
    params:
        setting="{setting}",
        seed=get_seed,
        task=get_task_name,
        hyper=get_hyperparameters,
        code=code_version("train.py", "models.py", "metrics.py", "tasks", "seeding.py"),
    threads: 1
    resources:
        gpu=get_gpu_count,
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/train_run.py"


rule collect_trajectories:
    input:
        get_run_metrics,
    output:
        "results/{setting}/trajectories.parquet",
    log:
        "logs/{setting}/collect_trajectories.log",
    params:
        source=get_source,
        features=get_features,
        convergence=get_convergence,
        code=code_version("trajectories.py"),
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/collect_trajectories.py"
