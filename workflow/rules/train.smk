# Training: one job trains a group of seeds of a setting (settings.<name>.seeds_per_job,
# default 1) into a temporary bundle; unpack_run copies each seed's files to its results
# folder, and Snakemake deletes the bundle once every seed of the group is unpacked.
# Snakemake cannot give one job a varying list of per-seed outputs, hence the bundle.
rule train_run:
    input:
        unpack(get_train_inputs),
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
        vectorize=setting_value(SETTINGS, "vectorize"),
        task=setting_value(SETTINGS, "task"),
        hyper=setting_value(SETTINGS, "params"),
        code=script_code("train_run.py"),
        resume_every=get_resume_every,  # not a rerun trigger (common.smk)
        probe=setting_value(SETTINGS, "probe"),
    script:
        "../scripts/train_run.py"


# The masked LM's WordPiece tokenizer, trained once per setting on its corpus's training
# lines; every training job of the setting reads it (settings without one skip this).
rule train_tokenizer:
    input:
        get_corpus_file,
    output:
        "results/{setting}/tokenizer.json",
    log:
        "logs/{setting}/train_tokenizer.log",
    conda:
        "../../envs/train.yaml"
    params:
        options=get_tokenizer_options,
        code=script_code("train_tokenizer.py"),
    script:
        "../scripts/train_tokenizer.py"


# Copies one seed's files out of its group's bundle, once the bundle's manifest says the
# training job finished: a shell command of the standard library only (UNPACK_SEED,
# training/unpack.py), ~0.05 s a seed. (One training job cannot list its group's seed
# files as outputs: a rule's outputs follow from its wildcards, and a group's seeds do not.)
rule unpack_run:
    input:
        get_run_bundle,
    output:
        metrics="results/{setting}/runs/seed{seed}/metrics.parquet",
        model="results/{setting}/runs/seed{seed}/model.safetensors",
    log:
        "logs/{setting}/unpack_run/seed{seed}.log",
    localrule: True
    # Declared for --sdm conda; the command names Snakemake's own interpreter, whose
    # standard library is all it needs.
    conda:
        "../../envs/analysis.yaml"
    params:
        # What decides the seed's files: a change reruns this job, hence its group's
        # training (the bundle is temporary and gone by then).
        task=setting_value(SETTINGS, "task"),
        hyper=setting_value(SETTINGS, "params"),
        code=script_code("train_run.py"),
    shell:
        UNPACK_SEED


# A seed's per-example losses on the setting's probe set (settings with probe: only),
# copied as unpack_run copies the seed's other files.
rule unpack_probe_losses:
    input:
        get_run_bundle,
    output:
        "results/{setting}/runs/seed{seed}/probe_losses.parquet",
    log:
        "logs/{setting}/unpack_probe_losses/seed{seed}.log",
    wildcard_constraints:
        setting=probe_settings_pattern(),
    localrule: True
    # Declared for --sdm conda; the command names Snakemake's own interpreter, whose
    # standard library is all it needs.
    conda:
        "../../envs/analysis.yaml"
    params:
        probe=setting_value(SETTINGS, "probe"),
        code=script_code("train_run.py"),
    shell:
        UNPACK_SEED


rule collect_trajectories:
    input:
        metrics=get_run_metrics,
        coords=get_pc_coords,  # only when features name pc1, pc2, ...
    output:
        "results/{setting}/trajectories.parquet",
    log:
        "logs/{setting}/collect_trajectories.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        source=setting_value(SETTINGS, "source"),
        features=setting_value(SETTINGS, "features"),
        convergence=setting_value(SETTINGS, "convergence"),
        table_digest=get_input_digest,
        code=script_code("collect_trajectories.py"),
    script:
        "../scripts/collect_trajectories.py"
