# Input functions and paths shared by the rule files (settings come from SETTINGS,
# validated in Snakefile). Params that only look a value up are made by
# trainmap/config/rule_params.py (setting_value, wildcard_number), not a getter each.
import os

from trainmap.tasks.data_files import is_local_corpus, is_local_file
from trainmap.io.provenance import code_digest, file_digest
from trainmap.io.columns import PROBE_FILE
from trainmap.io.tables import find_recorded_runs
from trainmap.function_space.features import pc_features
from trainmap.hmm.options import fit_options, map_options, sequence_options
from trainmap.config.rule_params import setting_value, wildcard_number
from trainmap.live.build import LIVE_SETTING_FIELDS

SCRIPTS_DIR = Path(workflow.basedir) / "workflow" / "scripts"

# The unpack rules' shell command: training/unpack.py (standard library only) run by
# Snakemake's own interpreter with the package on its path: ~0.05 s a seed, where a
# `run:` block starts a whole Snakemake process (~3.5 s) and a `script:` imports Snakemake.
# The paths come through the environment: Snakemake reruns a shell rule whose text
# changes, and a venv or clone elsewhere must not retrain every seed.
os.environ["_TRAINMAP_PYTHON"] = sys.executable
os.environ["_TRAINMAP_PACKAGE"] = str(Path(workflow.basedir) / "workflow")


envvars:
    "_TRAINMAP_PYTHON",
    "_TRAINMAP_PACKAGE",


UNPACK_SEED = (
    'PYTHONPATH="$_TRAINMAP_PACKAGE" "$_TRAINMAP_PYTHON" -m trainmap.training.unpack '
    "{input:q} {wildcards.seed} {log:q} {output:q}"
)


wildcard_constraints:
    setting="[a-z0-9_]+",
    seed="[0-9]+",
    group="[0-9]+",
    k="[0-9]+",
    fold="[0-9]+",
    resample="[0-9]+",


def script_code(script):
    """Digest of a rule's script and every package module it imports (a param, so that
    editing e.g. metrics.py reruns the rules whose code changed; trainmap.io.provenance).
    """
    return code_digest(SCRIPTS_DIR / script)


def get_setting(wildcards):
    """The job's setting (trainmap/config/settings.py's Setting)."""
    return SETTINGS[wildcards.setting]


def get_run_metrics(wildcards):
    """Per-seed metrics of a trained setting, the user's table (source table), or the
    runs recorded with trainmap.record (source runs)."""
    setting = get_setting(wildcards)
    if setting.source == "table":
        # a list: a named input given one string reads it as characters
        return [setting.table]
    if setting.source == "runs":
        return find_recorded_runs(setting.runs, f"settings.{setting.name}.runs")
    return expand(
        "results/{setting}/runs/seed{seed}/metrics.parquet",
        setting=setting.name,
        seed=setting.seeds,
    )


def get_input_digest(wildcards):
    """Content digest of a `source: table` file, or of each recorded run's file (a param:
    replacing a file with new content and an old mtime still reruns the setting); None
    for trained settings."""
    setting = get_setting(wildcards)
    if setting.source == "runs":
        files = get_run_metrics(wildcards) + (
            get_probe_losses(wildcards) if setting.probe else []
        )
        return {str(path): file_digest(path) for path in files}
    return file_digest(setting.table) if setting.source == "table" else None


def get_group_seeds(wildcards):
    """The seeds one train_run job trains (its group of the setting's seeds)."""
    setting = get_setting(wildcards)
    seeds = setting.seed_groups().get(int(wildcards.group))
    if seeds is None:
        raise ValueError(
            f"settings.{setting.name}: no seeds in training group {wildcards.group}"
        )
    return seeds


def get_run_bundle(wildcards):
    """The train_run output holding this seed's files."""
    setting = get_setting(wildcards)
    seed = int(wildcards.seed)
    if seed not in setting.seeds:
        raise ValueError(
            f"settings.{setting.name}.seeds: {seed} is not one of the seeds"
        )
    return f"results/{setting.name}/runs/group{setting.group_of(seed)}"


def settings_pattern(source):
    """A wildcard constraint matching the names of the settings with this source."""
    names = [name for name, s in SETTINGS.items() if s.source == source]
    return "|".join(names) or "(?!)"  # (?!) matches nothing


def get_checkpoint_series(wildcards):
    """One seed's checkpoint series as plain data: step -> location, and how to read it."""
    setting = get_setting(wildcards)
    seed = int(wildcards.seed)
    if seed not in setting.seeds:
        raise ValueError(
            f"settings.{setting.name}.seeds: {seed} is not one of the seeds"
        )
    series = setting.series
    return {
        "locations": series.locations(seed),
        "hub": series.hub,
        "model": series.model,
        "patterns": series.patterns,
        "spectra": setting.spectra,
        "evals": series.evals,
    }


def get_checkpoint_files(wildcards):
    """A seed's local checkpoints (none for the Hub) and the evals table, if any."""
    series = get_checkpoint_series(wildcards)
    files = [] if series["hub"] else list(series["locations"].values())
    return files + ([series["evals"]] if series["evals"] else [])


def get_gpu_count(wildcards):
    """Training (and checkpoint metrics) ask for a GPU unless the setting pins device: cpu."""
    return 0 if get_setting(wildcards).params["device"] == "cpu" else 1


TOKENIZER_OPTIONS = ("corpus", "eval_fraction", "vocab_size")


def get_train_inputs(wildcards):
    """Files a training job reads that another job makes, by hyperparameter name (the masked
    LM's tokenizer, the setting's own file unless the config names one); train_run.py
    passes each to the task as that hyperparameter."""
    params = get_setting(wildcards).params
    if "tokenizer" not in params:
        return {}
    if not params["tokenizer"]:
        return {"tokenizer": f"results/{wildcards.setting}/tokenizer.json"}
    if is_local_file(params["tokenizer"], ".json"):
        return {"tokenizer": params["tokenizer"]}
    return {}  # a hub tokenizer: fetched by the training job


def get_tokenizer_options(wildcards):
    """What train_tokenizer reads (other hyperparameters must not rerun it)."""
    params = get_setting(wildcards).params
    return {key: params[key] for key in TOKENIZER_OPTIONS}


def get_corpus_file(wildcards):
    """The local corpus file of a masked LM setting (none for a hub dataset)."""
    corpus = get_tokenizer_options(wildcards)["corpus"]
    return [corpus] if is_local_corpus(corpus) else []


def get_resume_every(wildcards, output):
    """Seconds between a training job's resumable states. Taking `output` makes the value
    "derived" for Snakemake, so it is no rerun trigger: the interval never changes results.
    """
    return get_setting(wildcards).resume_every


def get_sequence_options(wildcards):
    """The hmm options prepare_sequences uses (others must not rerun it)."""
    return sequence_options(get_setting(wildcards).hmm)


def get_fold_fits(wildcards):
    """selection kfold: the (K, fold) fits one k<K>.json refit reads; none for split."""
    hmm = get_setting(wildcards).hmm
    if hmm["selection"] != "kfold":
        return []
    return expand(
        "results/{setting}/hmm/folds/k{k}_fold{fold}.json",
        setting=wildcards.setting,
        k=wildcards.k,
        fold=range(hmm["folds"]),
    )


def get_fit_options(wildcards):
    """The hmm options fit_hmm uses (others must not rerun the fits)."""
    return fit_options(get_setting(wildcards).hmm)


def get_candidates(wildcards):
    """The candidate state counts K of the setting, sorted."""
    return sorted(get_setting(wildcards).hmm["states"])


def get_hmm_fits(wildcards):
    """k<K>.json of every candidate K of the setting (the fan-in of select_state_count)."""
    return expand(
        "results/{setting}/hmm/k{k}.json",
        setting=wildcards.setting,
        k=get_candidates(wildcards),
    )


def get_map_options(wildcards):
    """The options of the map's model: the fits', with hmm.map_restarts restarts."""
    return map_options(get_setting(wildcards).hmm)


def get_resample_options(wildcards):
    """The hmm options a resample uses: the fits', the candidates and the split size."""
    hmm = get_setting(wildcards).hmm
    keys = ("states", "val_fraction", "max_checkpoints")
    return {**fit_options(hmm), **{key: hmm[key] for key in keys}}


def get_resamples(wildcards):
    """stability.resamples R: the R resample fits (resample1 .. resampleR); none for R = 0."""
    return expand(
        "results/{setting}/stability/resample{resample}.json",
        setting=wildcards.setting,
        resample=range(1, get_setting(wildcards).stability["resamples"] + 1),
    )


def get_support(wildcards):
    """support.json when the setting has resamples (draw_training_map merges it)."""
    if not get_setting(wildcards).stability["resamples"]:
        return []
    return f"results/{wildcards.setting}/support.json"


def get_live_setting(wildcards):
    """The setting's fields the live evaluation reads, as plain values (a params value is
    unpickled in the script's process before the script puts its own package first: a
    Setting there would load whichever trainmap is installed)."""
    setting = get_setting(wildcards)
    return {key: getattr(setting, key) for key in LIVE_SETTING_FIELDS}


def live_settings_pattern():
    """Settings with a live: evaluation (a pattern that matches nothing when none has)."""
    names = [name for name, setting in SETTINGS.items() if setting.live]
    return "|".join(names) or "(?!)"


def probe_settings_pattern():
    """A wildcard constraint matching the names of the settings with a probe set."""
    names = [name for name, s in SETTINGS.items() if s.probe]
    return "|".join(names) or "(?!)"  # (?!) matches nothing


def get_probe_losses(wildcards):
    """Every run's probe_losses.parquet: a trained run's, or beside a recorded run's
    metrics.parquet (source runs)."""
    setting = get_setting(wildcards)
    if setting.source == "runs":
        return [path.with_name(PROBE_FILE) for path in get_run_metrics(wildcards)]
    return expand(
        "results/{setting}/runs/seed{seed}/probe_losses.parquet",
        setting=setting.name,
        seed=setting.seeds,
    )


def get_pc_coords(wildcards):
    """The function-space coordinates (rule fit_function_space) when the setting's
    features name pc1, pc2, ... and it has a probe set; nothing otherwise (the DAG
    without them is unchanged; a source table's pc1 column is an ordinary column)."""
    setting = get_setting(wildcards)
    if not (setting.probe and pc_features(setting.features)):
        return []
    return f"results/{wildcards.setting}/pca/coords.parquet"


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
                "map.html",
                "curves.html",
                "live.json",
            ],
        )
        if SETTINGS[name].live:
            outputs += expand(
                "results/{setting}/live/evaluation.{ext}",
                setting=name,
                ext=["json", "png"],
            )
        if SETTINGS[name].probe:
            outputs += expand(
                "results/{setting}/function_space.{ext}",
                setting=name,
                ext=["parquet", "json", "png", "html"],
            )
    outputs.append("results/summary.md")
    return outputs
