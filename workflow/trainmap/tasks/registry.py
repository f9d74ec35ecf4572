"""The task registry: task name -> ``Task`` (data, model, loss, accuracy factories).

Add a task: a module here with its factories, its hyperparameter dataclass in
``trainmap.tasks.params`` (registered in HYPERPARAMETERS), and a line below.
"""

from trainmap.errors import ConfigError
from trainmap.tasks.base import Splits, Task
from trainmap.tasks.cifar100_resnet18.task import CIFAR100_RESNET18
from trainmap.tasks.masked_lm.task import MASKED_LM
from trainmap.tasks.mnist_mlp.task import MNIST_MLP
from trainmap.tasks.modular_addition.task import MODULAR_ADDITION
from trainmap.tasks.sparse_parity.task import SPARSE_PARITY

TASKS: dict[str, Task] = {
    task.name: task
    for task in (MODULAR_ADDITION, SPARSE_PARITY, MNIST_MLP, CIFAR100_RESNET18, MASKED_LM)
}


def get_task(name: str, where: str = "task") -> Task:
    """The registered task ``name``; an unknown name raises ConfigError listing the known."""
    if name not in TASKS:
        raise ConfigError(
            f"{where}: unknown task {name!r}; registered tasks: {', '.join(sorted(TASKS))}"
        )
    return TASKS[name]


__all__ = ["TASKS", "Splits", "Task", "get_task"]
