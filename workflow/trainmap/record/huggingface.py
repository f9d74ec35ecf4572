"""``HFCallback``: a transformers ``TrainerCallback`` that records with a ``Recorder``.

    trainer = Trainer(model=model, args=args, ..., callbacks=[HFCallback("runs/myexp")])

Rows: at the start of training (the weights before the first step, or the resumed
step's), at every evaluation (with ``eval_loss``, ``eval_accuracy``, ... from the
evaluation's metrics), and every ``every`` optimizer steps if given; each row also gets
``epoch`` and, where the Trainer logged one at that step, ``train_loss`` (its ``loss``),
``learning_rate`` and ``grad_norm``. The seed is the Trainer's ``args.seed`` unless
given. Under distributed training only the main process (``state.is_world_process_zero``)
records; it reads its own replica of the weights (a model sharded over processes, as
with FSDP or DeepSpeed ZeRO-3, is not supported).
"""

from pathlib import Path

from transformers import TrainerCallback

from trainmap.errors import RecordError
from trainmap.record.pending import PendingRow, RecordingCallback, check_interval, numeric_scalars
from trainmap.record.recorder import Recorder


class HFCallback(RecordingCallback, TrainerCallback):
    """Record the Trainer's model into ``<directory>/seed<seed>/metrics.parquet``.

    directory, family, matrices, biases, flush_every, live, on_state, live_threshold: as
    for ``Recorder`` (the live map is read here; when ``on_state`` returns a true value the
    Trainer stops after the step it is in). seed: default the Trainer's ``args.seed``.
    every: also record every ``every`` optimizer steps.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        seed: int | None = None,
        every: int | None = None,
        family: str = "auto",
        matrices: list[str] | None = None,
        biases: list[str] | None = None,
        flush_every: float = 60.0,
        live=None,
        on_state=None,
        live_threshold: float = 0.5,
    ):
        check_interval(every, "HFCallback: every")
        super().__init__(directory, seed, family=family, matrices=matrices, biases=biases,
                         flush_every=flush_every, live=live, on_state=on_state,
                         live_threshold=live_threshold)  # fmt: skip
        self.every = every
        self._model = None
        self._train_log: tuple[int, dict] = (-1, {})  # the last training log: step, values

    def _new_recorder(self) -> Recorder:
        return Recorder(self.directory, seed=self._seed, model=self._model, **self.options)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if not state.is_world_process_zero:
            return
        if model is None:
            raise RecordError("HFCallback: the Trainer passed no model to its callbacks")
        self._seed = args.seed if self.seed is None else self.seed
        self._model = model
        self.recorder = self._new_recorder()
        self.row = PendingRow()
        self.row.add(state.global_step, epoch=state.epoch or 0.0)

    def on_step_begin(self, args, state, control, **kwargs):
        if self.recorder is not None:
            self.row.commit(self.recorder)  # the weights are still those of the last step
            if self.stop_requested():
                control.should_training_stop = True

    def on_step_end(self, args, state, control, **kwargs):
        if self.recorder is not None and self.every and state.global_step % self.every == 0:
            self.row.add(state.global_step, epoch=state.epoch)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.recorder is None or not logs or "train_runtime" in logs:
            return  # the summary log at the end of train() repeats an average loss
        values = numeric_scalars({k: v for k, v in logs.items() if k != "epoch"})
        if "loss" in values:
            values["train_loss"] = values.pop("loss")
        step, earlier = self._train_log  # several logs a step: train loss, then evaluation
        self._train_log = (
            state.global_step,
            {**(earlier if step == state.global_step else {}), **values},
        )
        if self.row.step == state.global_step:
            self.row.add(state.global_step, **values)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not state.is_world_process_zero or self._model is None:
            return
        values = numeric_scalars({k: v for k, v in (metrics or {}).items() if k != "epoch"})
        if self.recorder is None:  # trainer.evaluate() after train(): the last row gets them
            if self.row.last_logged is not None and self.row.last_logged[0] == state.global_step:
                self.row.redo_last(self._new_recorder, **values)
            return
        step, train_values = self._train_log
        train_values = train_values if step == state.global_step else {}
        self.row.add(state.global_step, **{"epoch": state.epoch, **train_values, **values})

    def on_train_end(self, args, state, control, **kwargs):
        self.finish()
