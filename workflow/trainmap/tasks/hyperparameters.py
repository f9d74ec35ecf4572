"""Task name -> its hyperparameter class, for every registered task (torch-free): the
keys, their checks and the data sizes they give (``train_examples()``, which config
validation uses to predict a run's checkpoints).

Why a second list beside ``trainmap.tasks.registry.TASKS``: every Snakemake start and
cluster job validates the config, which must not import torch (seconds); and the code
digests (trainmap.io.provenance) follow static imports, so the torch side must import
each task's factories by name rather than look them up lazily. A task's data sizes live
in its params class only (no table over task names elsewhere);
tests/config/test_settings.py checks that the two lists name the same tasks and classes.

Add a task: a folder ``tasks/<name>/`` with ``params.py`` (its keys, torch-free) and
``task.py`` (data, model, loss: its ``Task``), then one line here and one in
``trainmap.tasks.registry``.
"""

from trainmap.errors import ConfigError
from trainmap.tasks.cifar100_resnet18.params import Cifar100ResNet18Params
from trainmap.tasks.masked_lm.params import MaskedLMParams
from trainmap.tasks.mnist_mlp.params import MnistMlpParams
from trainmap.tasks.modular_addition.params import ModularAdditionParams
from trainmap.tasks.params import TrainingParams
from trainmap.tasks.sparse_parity.params import SparseParityParams

# Task name -> its hyperparameters; trainmap.tasks.registry.TASKS holds the factories.
HYPERPARAMETERS: dict[str, type[TrainingParams]] = {
    "modular_addition": ModularAdditionParams,
    "sparse_parity": SparseParityParams,
    "mnist_mlp": MnistMlpParams,
    "cifar100_resnet18": Cifar100ResNet18Params,
    "masked_lm": MaskedLMParams,
}


def task_params(name: str, where: str = "task") -> type[TrainingParams]:
    """The hyperparameter class of task ``name``; unknown names raise ConfigError."""
    if name not in HYPERPARAMETERS:
        raise ConfigError(
            f"{where}: unknown task {name!r}; registered tasks: "
            + ", ".join(sorted(HYPERPARAMETERS))
        )
    return HYPERPARAMETERS[name]
