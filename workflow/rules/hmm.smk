# HMM stage (METHOD.md sections 3-4): prepare sequences, fit one job per (setting, K),
# select K by validation BIC, decode every run under the selected model.
SEQUENCE_OPTIONS = ("max_checkpoints", "normalize", "val_fraction", "seed", "states")
FIT_OPTIONS = ("restarts", "n_iter", "covariance", "seed", "tol", "min_covar")


def get_sequence_options(wildcards):
    """The hmm options prepare_sequences uses (others must not rerun it)."""
    hmm = get_hmm_options(wildcards)
    return {key: hmm[key] for key in SEQUENCE_OPTIONS}


def get_fit_options(wildcards):
    """The hmm options fit_hmm uses (others must not rerun the fits)."""
    hmm = get_hmm_options(wildcards)
    return {key: hmm[key] for key in FIT_OPTIONS}


def get_state_count(wildcards):
    return int(wildcards.k)


def get_hmm_fits(wildcards):
    """k<K>.json of every candidate K of the setting (the fan-in of select_state_count)."""
    return expand(
        "results/{setting}/hmm/k{k}.json",
        setting=wildcards.setting,
        k=sorted(get_hmm_options(wildcards)["states"]),
    )


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
        features=get_features,
        options=get_sequence_options,
        code=code_version("sequences.py", "seeding.py"),
    script:
        "../scripts/prepare_sequences.py"


rule fit_hmm:
    input:
        "results/{setting}/hmm/sequences.parquet",
    output:
        "results/{setting}/hmm/k{k}.json",
    log:
        "logs/{setting}/fit_hmm/k{k}.log",
    # Largest K first: the longest jobs start early, so the parallel fits end together.
    # threads: 1 also makes Snakemake set OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, ... to 1.
    priority: get_state_count
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    params:
        n_states=get_state_count,
        options=get_fit_options,
        code=code_version("hmm.py", "sequences.py", "seeding.py"),
    script:
        "../scripts/fit_hmm.py"


rule select_state_count:
    input:
        get_hmm_fits,
    output:
        selection="results/{setting}/hmm/selection.json",
        figure="results/{setting}/selection.png",
    log:
        "logs/{setting}/select_state_count.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        setting="{setting}",
        code=code_version("selection.py"),
    script:
        "../scripts/select_state_count.py"


rule decode_states:
    input:
        sequences="results/{setting}/hmm/sequences.parquet",
        selection="results/{setting}/hmm/selection.json",
        fits=get_hmm_fits,
    output:
        "results/{setting}/states.parquet",
    log:
        "logs/{setting}/decode_states.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    params:
        code=code_version("decode.py", "hmm.py", "sequences.py"),
    script:
        "../scripts/decode_states.py"
