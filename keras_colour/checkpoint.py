"""Atomic checkpoints of the whole training state, and generator export.

A checkpoint holds every network, both optimisers (slots and iteration
counts) and the number of completed epochs. `tf.train.CheckpointManager`
writes the data files first and then replaces the small `checkpoint` index
file atomically, so a kill while saving leaves the previous checkpoint as
the latest one, intact. The generator is also exported as a standalone
`.keras` file (written to a temporary name, then renamed).
"""

import json
import logging
import os

import keras
import tensorflow as tf

logger = logging.getLogger(__name__)


def atomic_write_text(path, text):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def export_generator(generator, path):
    """Saves the generator as a `.keras` file that loads without keras_colour."""
    tmp = f"{path[: -len('.keras')]}.tmp-{os.getpid()}.keras"
    try:
        generator.save(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


class TrainingCheckpoint:
    """Saves and restores a `ColourGAN`'s full state in `directory`.

    Args:
        trainer: a compiled `ColourGAN` (optimisers built).
        directory: str. Where checkpoints live.
        max_to_keep: int. Older checkpoints are deleted. Defaults to 3.
    """

    def __init__(self, trainer, directory, max_to_keep=3):
        self.trainer = trainer
        self.directory = directory
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="completed_epochs")
        objects = dict(generator=trainer.generator, g_optimizer=trainer.g_optimizer, epoch=self.epoch, colour_on=trainer.colour_on)
        if trainer.discriminator is not None:
            objects.update(discriminator=trainer.discriminator, d_optimizer=trainer.d_optimizer)
        self.checkpoint = tf.train.Checkpoint(**objects)
        self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=max_to_keep)

    @property
    def latest(self):
        return self.manager.latest_checkpoint

    def save(self, completed_epochs):
        self.epoch.assign(completed_epochs)
        path = self.manager.save(checkpoint_number=completed_epochs)
        logger.info("Saved checkpoint %s", path)
        return path

    def restore(self):
        """Restores the latest checkpoint; returns the number of completed epochs (0 if none)."""
        latest = self.manager.latest_checkpoint
        if latest is None:
            return 0
        self.checkpoint.restore(latest).assert_existing_objects_matched()
        logger.info(
            "Resumed from %s (%d epochs completed, optimiser step %d)",
            latest,
            int(self.epoch.numpy()),
            int(self.trainer.g_optimizer.iterations.numpy()),
        )
        return int(self.epoch.numpy())


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the training state and exports the generator after every epoch.

    Args:
        checkpoint: `TrainingCheckpoint`.
        generator_path: str or None. Where to export `generator.keras`.
        state_path: str or None. A JSON file recording progress.
        total_epochs: int. Written to the state file; the run is finished at that count.
    """

    def __init__(self, checkpoint, generator_path=None, state_path=None, total_epochs=None):
        super().__init__()
        self.ckpt = checkpoint
        self.generator_path = generator_path
        self.state_path = state_path
        self.total_epochs = total_epochs

    def on_epoch_end(self, epoch, logs=None):
        completed = epoch + 1
        self.ckpt.save(completed)
        if self.generator_path:
            export_generator(self.ckpt.trainer.generator, self.generator_path)
        if self.state_path:
            state = {"completed_epochs": completed, "total_epochs": self.total_epochs, "finished": completed == self.total_epochs}
            atomic_write_text(self.state_path, json.dumps(state, indent=2))
