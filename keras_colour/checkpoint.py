"""Atomic checkpoints of the whole training state, and generator export.

A checkpoint holds every network, both optimisers (slots and iteration
counts) and the number of completed epochs. `tf.train.CheckpointManager`
writes the data files first and then replaces the small `checkpoint` index
file atomically, so a kill while saving leaves the previous checkpoint as
the latest one, intact. The generator is also exported as a standalone
`.keras` file (written to a temporary name, then renamed).
"""

import logging

import tensorflow as tf

from keras_colour.io_utils import atomic_path
from keras_colour.models.export import plain_generator

logger = logging.getLogger(__name__)


def export_generator(generator, path):
    """Saves the generator as a `.keras` file that loads without keras_colour (atomically).

    Spectral norm is folded into plain kernels and the BBC instance norm mapped onto built-in layers
    (`keras_colour.models.export.plain_generator`).
    """
    with atomic_path(path) as tmp:
        plain_generator(generator).save(tmp)


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
        objects = dict(
            generator=trainer.generator,
            g_optimizer=trainer.g_optimizer,
            epoch=self.epoch,
            colour_terms_gate=trainer.colour_terms_gate,
        )
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

    def restore(self, directory=None):
        """Restores the latest checkpoint (of `directory`, default this one's); returns completed epochs (0 if none).

        Workers other than the chief restore the chief's checkpoint and save into a folder of their own.
        """
        latest = self.manager.latest_checkpoint if directory is None else tf.train.latest_checkpoint(directory)
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
