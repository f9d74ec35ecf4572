# HMM stage (METHOD.md sections 3-4): prepare sequences, fit one job per (setting, K)
# (with selection: kfold first one per (setting, K, fold)), select K by validation BIC,
# decode every run under the selected model.


rule prepare_sequences:
    input:
        "results/{setting}/trajectories.parquet",
    output:
        sequences="results/{setting}/hmm/sequences.parquet",
        report="results/{setting}/hmm/prepare.json",
    log:
        "logs/{setting}/prepare_sequences.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        setting="{setting}",
        features=setting_value(SETTINGS, "features"),
        features_given=setting_value(SETTINGS, "features_given"),
        options=get_sequence_options,
        code=script_code("prepare_sequences.py"),
    script:
        "../scripts/prepare_sequences.py"


rule fit_hmm_fold:
    input:
        "results/{setting}/hmm/sequences.parquet",
    output:
        "results/{setting}/hmm/folds/k{k}_fold{fold}.json",
    log:
        "logs/{setting}/fit_hmm_fold/k{k}_fold{fold}.log",
    priority: wildcard_number("k")
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    params:
        n_states=wildcard_number("k"),
        fold=wildcard_number("fold"),
        options=get_fit_options,
        code=script_code("fit_hmm_fold.py"),
    script:
        "../scripts/fit_hmm_fold.py"


rule fit_hmm:
    input:
        sequences="results/{setting}/hmm/sequences.parquet",
        folds=get_fold_fits,  # selection kfold: refit on all runs, with the folds' scores
    output:
        "results/{setting}/hmm/k{k}.json",
    log:
        "logs/{setting}/fit_hmm/k{k}.log",
    # Largest K first: the longest jobs start early, so the parallel fits end together.
    # threads: 1 also makes Snakemake set OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, ... to 1.
    priority: wildcard_number("k")
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    params:
        n_states=wildcard_number("k"),
        selection=setting_value(SETTINGS, "hmm", "selection"),
        options=get_fit_options,
        code=script_code("fit_hmm.py"),
    script:
        "../scripts/fit_hmm.py"


# stability: {resamples: R}: R redraws of the split and the restarts, each a whole
# selection and map (trainmap.hmm.resample); K is the one most of them pick.
rule fit_resample:
    input:
        sequences="results/{setting}/hmm/sequences.parquet",
        trajectories="results/{setting}/trajectories.parquet",
    output:
        "results/{setting}/stability/resample{resample}.json",
    log:
        "logs/{setting}/fit_resample/resample{resample}.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    params:
        setting="{setting}",
        resample=wildcard_number("resample"),
        hmm=get_resample_options,
        stability=setting_value(SETTINGS, "stability"),
        convergence=setting_value(SETTINGS, "convergence"),
        alpha=setting_value(SETTINGS, "alpha"),
        code=script_code("fit_resample.py"),
    script:
        "../scripts/fit_resample.py"


rule select_state_count:
    input:
        fits=get_hmm_fits,
        resamples=get_resamples,
    output:
        selection="results/{setting}/hmm/selection.json",
        figure="results/{setting}/selection.png",
    log:
        "logs/{setting}/select_state_count.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        setting="{setting}",
        stability=setting_value(SETTINGS, "stability"),
        code=script_code("select_state_count.py"),
    script:
        "../scripts/select_state_count.py"


rule compute_support:
    input:
        resamples=get_resamples,
        selection="results/{setting}/hmm/selection.json",
        states="results/{setting}/states.parquet",
        detours="results/{setting}/detours.csv",
    output:
        "results/{setting}/support.json",
    log:
        "logs/{setting}/compute_support.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        code=script_code("compute_support.py"),
    script:
        "../scripts/compute_support.py"


# The map's model: the selected K refit on all runs (hmm.refit; trainmap.hmm.selected).
rule fit_map_model:
    input:
        sequences="results/{setting}/hmm/sequences.parquet",
        selection="results/{setting}/hmm/selection.json",
        fits=get_hmm_fits,
    output:
        "results/{setting}/hmm/selected.json",
    log:
        "logs/{setting}/fit_map_model.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    params:
        refit=setting_value(SETTINGS, "hmm", "refit"),
        options=get_map_options,
        code=script_code("fit_map_model.py"),
    script:
        "../scripts/fit_map_model.py"


rule decode_states:
    input:
        sequences="results/{setting}/hmm/sequences.parquet",
        model="results/{setting}/hmm/selected.json",
    output:
        "results/{setting}/states.parquet",
    log:
        "logs/{setting}/decode_states.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    params:
        code=script_code("decode_states.py"),
    script:
        "../scripts/decode_states.py"
