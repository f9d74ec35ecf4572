# Helpers shared by the rule files (settings come from SETTINGS, validated in Snakefile).

from trainmap.provenance import code_digest

SCRIPTS_DIR = Path(workflow.basedir) / "workflow" / "scripts"


wildcard_constraints:
    setting="[a-z0-9_]+",
    seed="[0-9]+",
    group="[0-9]+",
    k="[0-9]+",


def script_code(script):
    """Digest of a rule's script and every package module it imports (a param, so that
    editing e.g. metrics.py reruns the rules whose code changed; trainmap.provenance).
    """
    return code_digest(SCRIPTS_DIR / script)


def get_setting(wildcards):
    return SETTINGS[wildcards.setting]


def get_run_metrics(wildcards):
    """Per-seed metrics of a trained setting, or the user's table (source table)."""
    setting = get_setting(wildcards)
    if setting.source == "table":
        return setting.table
    return expand(
        "results/{setting}/runs/seed{seed}/metrics.parquet",
        setting=setting.name,
        seed=setting.seeds,
    )


def get_group_seeds(wildcards):
    """The seeds one train_run job trains (its group of the setting's seeds)."""
    setting = get_setting(wildcards)
    seeds = setting.seed_groups().get(int(wildcards.group))
    if seeds is None:
        raise ValueError(
            f"settings.{setting.name}: no seeds in training group {wildcards.group}"
        )
    return seeds


def get_vectorize(wildcards):
    """auto | true | false: how a train_run job trains its group of seeds."""
    return get_setting(wildcards).vectorize


def get_run_bundle(wildcards):
    """The train_run output holding this seed's files."""
    setting = get_setting(wildcards)
    seed = int(wildcards.seed)
    if seed not in setting.seeds:
        raise ValueError(
            f"settings.{setting.name}.seeds: {seed} is not one of the seeds"
        )
    return f"results/{setting.name}/runs/group{setting.group_of(seed)}"


def get_gpu_count(wildcards):
    """Training asks for a GPU unless the setting pins device: cpu."""
    return 0 if get_setting(wildcards).params["device"] == "cpu" else 1


def get_source(wildcards):
    return get_setting(wildcards).source


def get_features(wildcards):
    return get_setting(wildcards).features


def get_convergence(wildcards):
    return get_setting(wildcards).convergence


def get_hmm_options(wildcards):
    return get_setting(wildcards).hmm


def get_hyperparameters(wildcards):
    return get_setting(wildcards).params


def get_task_name(wildcards):
    return get_setting(wildcards).task


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


def get_alpha(wildcards):
    return get_setting(wildcards).alpha


def get_final_outputs():
    outputs = []
    for name in SETTINGS:
        outputs += expand(
            "results/{setting}/{file}",
            setting=name,
            file=[
                "trajectories.parquet",
                "hmm/selection.json",
                "states.parquet",
                "map.json",
                "detours.csv",
                "regression.json",
            ],
        )
    outputs.append("results/summary.md")
    return outputs
