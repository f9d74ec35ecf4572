"""Which ``hmm`` config keys each step of the HMM stage reads (no heavy imports: the
Snakefile reads these to give each rule only its own options, so that changing another
key reruns nothing)."""

# prepare_sequences (plus ``folds`` under selection: kfold, ``blocks`` under time)
SEQUENCE_OPTIONS = ("max_checkpoints", "normalize", "val_fraction", "seed", "states")
# trainmap.hmm.fit.fit_state_count's keyword options
FIT_OPTIONS = (
    "restarts",
    "n_iter",
    "covariance",
    "seed",
    "tol",
    "min_covar",
    "covariance_guard",
    "keep_by",
)


def fit_options(hmm: dict) -> dict:
    """The ``fit_state_count`` options of a setting's ``hmm`` block."""
    return {key: hmm[key] for key in FIT_OPTIONS}


def map_options(hmm: dict) -> dict:
    """The options of the map's model (trainmap.hmm.selected): the fits', with
    ``hmm.map_restarts`` restarts."""
    return {**fit_options(hmm), "restarts": hmm["map_restarts"]}


def sequence_options(hmm: dict) -> dict:
    """The ``prepare_sequences`` options of a setting's ``hmm`` block; ``folds`` only with
    selection: kfold and ``blocks`` (``hmm.folds``: blocks of each run) only with time, so
    a split setting's options stay as they were."""
    options = {key: hmm[key] for key in SEQUENCE_OPTIONS}
    if hmm["selection"] == "kfold":
        options["folds"] = hmm["folds"]
    if hmm["selection"] == "time":
        options["blocks"] = hmm["folds"]
    return options
