# Checkpoint series that exist already (source: checkpoints): one job per (setting, seed)
# computes the seed's metrics at every checkpoint, in the same file a trained run's
# unpack_run writes; collect_trajectories and everything after run unchanged.
ruleorder: compute_checkpoint_metrics > unpack_run


rule compute_checkpoint_metrics:
    input:
        get_checkpoint_files,  # local checkpoints and evals: a change reruns the seed
    output:
        "results/{setting}/runs/seed{seed}/metrics.parquet",
        # the rule applied and the tensors each metric group read, as recorded runs have
        "results/{setting}/runs/seed{seed}/weights.json",
    log:
        "logs/{setting}/compute_checkpoint_metrics/seed{seed}.log",
    wildcard_constraints:
        setting=settings_pattern("checkpoints"),
    conda:
        "../../envs/train.yaml"
    threads: setting_value(SETTINGS, "threads")
    resources:
        gpu=get_gpu_count,
    params:
        setting="{setting}",
        seed="{seed}",
        series=get_checkpoint_series,
        hyper=setting_value(SETTINGS, "params"),
        code=script_code("compute_checkpoint_metrics.py"),
    script:
        "../scripts/compute_checkpoint_metrics.py"
