# Helpers shared by the rule files (settings come from SETTINGS, validated in Snakefile).
import hashlib

PACKAGE_DIR = Path(workflow.basedir) / "workflow" / "trainmap"


wildcard_constraints:
    setting="[a-z0-9_]+",
    seed="[0-9]+",
    k="[0-9]+",


def code_version(*modules):
    """Hash of package modules: a rule's params change when code it runs changes."""
    digest = hashlib.sha256()
    for module in modules:
        path = PACKAGE_DIR / module
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def get_setting(wildcards):
    return SETTINGS[wildcards.setting]


def train_settings():
    return [name for name, s in SETTINGS.items() if s.source == "train"]


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


def get_seed(wildcards):
    return int(wildcards.seed)


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
