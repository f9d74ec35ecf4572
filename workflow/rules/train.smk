rule train_run:
    output:
        metrics="results/{setting}/runs/seed{seed}/metrics.parquet",
        model="results/{setting}/runs/seed{seed}/model.safetensors",
    log:
        "logs/{setting}/train_run/seed{seed}.log",
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        gpu=get_gpu_count,
    params:
        setting="{setting}",
        seed=get_seed,
        task=get_task_name,
        hyper=get_hyperparameters,
        code=script_code("train_run.py"),
    script:
        "../scripts/train_run.py"


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
