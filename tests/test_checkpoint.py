import os

import keras
import numpy as np
import pytest

import keras_colour
from keras_colour.checkpoint import TrainingCheckpoint, export_generator
from keras_colour.config import config_from_dict


def _trainer():
    overrides = ["data.image_size=32", "model.base_filters=4", "model.max_filters=16", "model.num_downsamples=4",
                 "model.discriminator=multiscale", "loss.adversarial=lsgan"]  # fmt: skip
    return keras_colour.build_trainer(config_from_dict({}, overrides=overrides))


def test_interrupted_save_leaves_previous_checkpoint_as_latest(tmp_path):
    trainer = _trainer()
    ckpt = TrainingCheckpoint(trainer, str(tmp_path))
    ckpt.save(1)
    saved = [w.copy() for w in trainer.generator.get_weights()]
    # A process killed while writing checkpoint 2: its data files exist (partly), the index file was never updated.
    (tmp_path / "ckpt-2.index").write_bytes(b"\x00partial")
    (tmp_path / "ckpt-2.data-00000-of-00001").write_bytes(b"\x00" * 10)
    fresh = _trainer()
    assert not all(
        np.array_equal(a, b) for a, b in zip(saved, fresh.generator.get_weights())
    )  # what restore must change
    restored = TrainingCheckpoint(fresh, str(tmp_path))
    assert restored.latest.endswith("ckpt-1")
    assert restored.restore() == 1
    assert all(np.array_equal(a, b) for a, b in zip(saved, fresh.generator.get_weights()))


def test_optimiser_slots_round_trip(tmp_path):
    import tensorflow as tf

    trainer = _trainer()
    rng = np.random.default_rng(0)
    batch = (
        tf.constant(rng.uniform(-1, 1, (2, 32, 32, 1)), tf.float32),
        tf.constant(rng.uniform(-1, 1, (2, 32, 32, 2)), tf.float32),
    )
    trainer.fit(tf.data.Dataset.from_tensors(batch).repeat(3), epochs=1, verbose=0)
    TrainingCheckpoint(trainer, str(tmp_path)).save(1)
    fresh = _trainer()
    TrainingCheckpoint(fresh, str(tmp_path)).restore()
    for opt_a, opt_b in ((trainer.g_optimizer, fresh.g_optimizer), (trainer.d_optimizer, fresh.d_optimizer)):
        assert int(opt_b.iterations.numpy()) == 3
        for a, b in zip(opt_a.variables, opt_b.variables):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_export_is_atomic(tmp_path, monkeypatch):
    generator = _trainer().generator
    path = str(tmp_path / "generator.keras")
    export_generator(generator, path)
    before = open(path, "rb").read()

    def crash(self, filepath, *args, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"half a zip")
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(keras.Model, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        export_generator(generator, path)
    assert open(path, "rb").read() == before
    monkeypatch.undo()
    assert keras.models.load_model(path).count_params() == generator.count_params()
    assert os.listdir(tmp_path) == ["generator.keras"]  # the partial temp file was removed
