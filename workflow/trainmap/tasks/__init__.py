"""The task registry: task name -> ``Task``. Add a task by adding a module and a line here."""

from trainmap.tasks.base import ConfigError, Splits, Task, TrainingParams, parse_params
from trainmap.tasks.modular_addition import MODULAR_ADDITION
from trainmap.tasks.sparse_parity import SPARSE_PARITY

TASKS: dict[str, Task] = {task.name: task for task in (MODULAR_ADDITION, SPARSE_PARITY)}


def get_task(name: str, where: str = "task") -> Task:
    """The registered task ``name``; an unknown name raises ConfigError listing the known."""
    if name not in TASKS:
        raise ConfigError(
            f"{where}: unknown task {name!r}; registered tasks: {', '.join(sorted(TASKS))}"
        )
    return TASKS[name]


__all__ = ["TASKS", "ConfigError", "Splits", "Task", "TrainingParams", "get_task", "parse_params"]
