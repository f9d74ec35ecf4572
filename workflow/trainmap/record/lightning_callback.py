"""``LightningCallback``: a Lightning ``Callback`` that records with a ``Recorder``.

    trainer = lightning.Trainer(..., callbacks=[LightningCallback("runs/myexp")])

Rows: at the start of training, at the end of every validation (sanity checks excluded)
with every metric the module logged (``trainer.callback_metrics``: ``val_loss``,
``val_acc``, ...), and every ``every_n_steps`` optimizer steps if given, with the step's
training loss as ``train_loss``; each row also gets ``epoch``. The seed is the one given
to ``lightning.seed_everything`` unless given here. Under distributed training only the
global-zero process records.
"""

import os
from pathlib import Path

from lightning.pytorch import Callback

from trainmap.errors import RecordError
from trainmap.record.pending import PendingRow, RecordingCallback, check_interval, numeric_scalars
from trainmap.record.recorder import Recorder


class LightningCallback(RecordingCallback, Callback):
    """Record the LightningModule into ``<directory>/seed<seed>/metrics.parquet``.

    directory, family, matrices, biases, flush_every, live, on_state, live_threshold: as
    for ``Recorder`` (the live map is read here; when ``on_state`` returns a true value the
    Trainer stops). seed: default
    the seed of ``lightning.seed_everything`` (an error when neither is there).
    every_n_steps: also record every that many optimizer steps (None: validations only).
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        seed: int | None = None,
        every_n_steps: int | None = None,
        family: str = "auto",
        matrices: list[str] | None = None,
        biases: list[str] | None = None,
        flush_every: float = 60.0,
        live=None,
        on_state=None,
        live_threshold: float = 0.5,
    ):
        check_interval(every_n_steps, "LightningCallback: every_n_steps")
        super().__init__(directory, seed, family=family, matrices=matrices, biases=biases,
                         flush_every=flush_every, live=live, on_state=on_state,
                         live_threshold=live_threshold)  # fmt: skip
        self.every_n_steps = every_n_steps

    def _seed(self) -> int:
        if self.seed is not None:
            return self.seed
        seed = os.environ.get("PL_GLOBAL_SEED")  # set by lightning.seed_everything
        if seed is None:
            raise RecordError(
                "LightningCallback: no seed; pass seed= or call lightning.seed_everything(seed)"
            )
        return int(seed)

    def on_train_start(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        self.recorder = Recorder(self.directory, seed=self._seed(), model=pl_module,
                                 **self.options)  # fmt: skip
        self.row = PendingRow()
        self.row.add(trainer.global_step, epoch=trainer.current_epoch)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.recorder is not None:
            self.row.commit(self.recorder)  # no optimizer step since the row's step
            if self.stop_requested():
                trainer.should_stop = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if self.recorder is None or not self.every_n_steps or step % self.every_n_steps:
            return
        if self.row.step == step:
            return  # several micro-batches of one optimizer step (gradient accumulation)
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        values = numeric_scalars({"train_loss": loss}) if loss is not None else {}
        self.row.add(step, epoch=trainer.current_epoch, **values)

    def on_validation_end(self, trainer, pl_module) -> None:
        if self.recorder is None or trainer.sanity_checking:
            return
        values = numeric_scalars(dict(trainer.callback_metrics))
        self.row.add(trainer.global_step, **{"epoch": trainer.current_epoch, **values})

    def on_train_end(self, trainer, pl_module) -> None:
        self.finish()
