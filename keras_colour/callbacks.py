"""Keras callbacks of a training run: checkpoints, the NaN stop, samples, curves, the segmentation schedule."""

import logging
import math

import keras
import numpy as np

from keras_colour import figures
from keras_colour.checkpoint import export_generator
from keras_colour.interrupt import InterruptFlag

logger = logging.getLogger(__name__)


def non_finite(logs):
    """The first `(name, value)` in `logs` that is NaN or infinite, or None."""
    for name, value in (logs or {}).items():
        if not math.isfinite(float(value)):
            return name, float(value)
    return None


def weights_finite(model):
    """True if every variable of `model` holds only finite numbers (no NaN, no infinity)."""
    return all(np.isfinite(w).all() for w in model.get_weights())


class StopOnNonFinite(keras.callbacks.Callback):
    """Stops training at the first NaN or infinite loss (training or validation), naming the term and step.

    `message` says what happened; `EpochCheckpoint` saves nothing of an epoch that went non-finite, so the
    last good checkpoint stays the latest.
    """

    def __init__(self):
        super().__init__()
        self.message = None
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def _stop(self, name, value, where):
        self.message = (
            f"loss term {name!r} became {value} at epoch {self.epoch + 1}{where}. Training stopped; the last "
            "completed epoch's checkpoint is intact. Try a lower learning rate, mixed_precision: none, "
            "or check the data"
        )
        self.model.stop_training = True

    def on_train_batch_end(self, batch, logs=None):
        bad = non_finite(logs)
        if bad and self.message is None:
            self._stop(*bad, f", step {batch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        bad = non_finite(logs)
        if bad and self.message is None:
            self._stop(*bad, " (validation)" if bad[0].startswith("val_") else "")


class StopOnInterrupt(keras.callbacks.Callback):
    """Ctrl-C (SIGINT) ends training after the current step; the unfinished epoch is not saved.

    The signal only sets a flag that the next step's end reads, so it cannot be lost inside TensorFlow or a
    finaliser (where a `KeyboardInterrupt` is printed and ignored). A second Ctrl-C stops at once.
    `requested` tells the caller to report the interruption once `fit` returns.
    """

    def __init__(self):
        super().__init__()
        self._flag = None

    @property
    def requested(self):
        return self._flag is not None and self._flag.requested

    def on_train_begin(self, logs=None):
        self._flag = InterruptFlag(
            on_first=lambda: logger.warning("Interrupted: stopping after this step (Ctrl-C again to stop at once)")
        )

    def on_train_batch_end(self, batch, logs=None):
        if self.requested:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self._flag is not None:
            self._flag.restore()


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the training state, exports the generator and records progress after every epoch.

    Put it after the callbacks that write the epoch's history row and sample grid: a kill between them and
    this one leaves those ahead of the checkpoint, which `RunFolder.align_to_checkpoint` trims on resume.
    An epoch with a non-finite loss or weight is not saved.

    Args:
        checkpoint: `TrainingCheckpoint`.
        run: `RunFolder`.
        total_epochs: int. Written to the state file; the run is finished at that count.
        interrupt: `StopOnInterrupt`, whose request means the epoch was cut short and is not saved.
    """

    def __init__(self, checkpoint, run, total_epochs, interrupt=None):
        super().__init__()
        self.checkpoint, self.run, self.total_epochs, self.interrupt = checkpoint, run, total_epochs, interrupt

    def on_epoch_end(self, epoch, logs=None):
        if self.interrupt is not None and self.interrupt.requested:
            return  # the epoch was cut short: the last completed one stays the latest checkpoint
        generator = self.checkpoint.trainer.generator
        if non_finite(logs) or not weights_finite(generator):
            logger.error("Epoch %d ended with non-finite losses or weights: it is not saved.", epoch + 1)
            self.model.stop_training = True
            return
        completed = epoch + 1
        self.checkpoint.save(completed)
        export_generator(generator, self.run.generator_path)
        self.run.write_state(completed, self.total_epochs)


class SegmentationSchedule(keras.callbacks.Callback):
    """Separate decoders: segmentation only for the first `pretrain_epochs`, then both tasks."""

    def __init__(self, pretrain_epochs):
        super().__init__()
        self.pretrain_epochs = pretrain_epochs

    def on_epoch_begin(self, epoch, logs=None):
        self.model.colour_terms_gate.assign(0.0 if epoch < self.pretrain_epochs else 1.0)


class SampleGrid(keras.callbacks.Callback):
    """Saves a grid of test colourisations each epoch: grayscale input | prediction | ground truth.

    Args:
        batch: a `keras_colour.batch.Batch` of test images.
        run: `RunFolder`.
    """

    def __init__(self, batch, run):
        super().__init__()
        self.batch, self.run = batch, run

    def on_epoch_end(self, epoch, logs=None):
        fake_ab = self.model.head.ab(self.model.generator(self.batch.lightness, training=False), self.batch.mask)
        figures.save_sample_grid(self.batch.lightness, self.batch.ab, fake_ab, self.run.sample_path(epoch + 1))


class LossCurves(keras.callbacks.Callback):
    """Redraws `loss_curves.png` from `history.csv` after every epoch (thesis Figures 12 to 14)."""

    def __init__(self, run):
        super().__init__()
        self.run = run

    def on_epoch_end(self, epoch, logs=None):
        fig = figures.plot_loss_curves(self.run.history, self.run.loss_curves)
        if fig is not None:
            figures.close(fig)


class ReportSkips(keras.callbacks.Callback):
    """Lists the undecodable files the pipeline skipped, once training ends."""

    def __init__(self, skip_log):
        super().__init__()
        self.skip_log = skip_log

    def on_train_end(self, logs=None):
        self.skip_log.report()


class HistoryCSV(keras.callbacks.CSVLogger):
    """`history.csv`: Keras's CSV log with epochs counted from 1, as the log lines and `samples/epoch_NNN.png` are."""

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch + 1, logs)
