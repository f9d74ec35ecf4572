"""Task name -> its hyperparameter class, for every registered task (torch-free).

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
