"""Training on several machines (`train.distribute: multi_worker`, configured by `TF_CONFIG`).

Keras 3.15's `fit` cannot run under `MultiWorkerMirroredStrategy` with more than one worker: before the first
step it reduces the first distributed batch eagerly, which fails with "Attempt to convert a value (PerReplica
...)" (`keras/src/backend/tensorflow/trainer.py`, `_maybe_symbolic_build`; keras-team/keras#20585). `fit_workers`
is the loop `fit` would run, without that step: `strategy.run(model.train_step)` on the distributed dataset,
losses averaged over workers, Keras callbacks and `History` as `fit` calls them, validation with `test_step`.

Every worker runs every callback, so collective operations stay in step; only the chief writes into the run
folder (the others write into a temporary folder that is removed at the end, as TensorFlow's multi-worker
guide asks). The data are sharded by element: each worker trains on its own part of every global batch.
"""

import itertools
import json
import logging
import os

import keras
import numpy as np
import tensorflow as tf

logger = logging.getLogger(__name__)


def cluster():
    """`(workers, index, is_chief)` from `TF_CONFIG` (one worker, index 0, chief when unset)."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    spec, task = config.get("cluster", {}), config.get("task", {})
    workers = len(spec.get("worker", [])) + len(spec.get("chief", []))
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    is_chief = kind == "chief" or (kind == "worker" and index == 0 and "chief" not in spec)
    return max(workers, 1), index, is_chief


def weight_digest(model):
    """A float64 checksum of a model's weights: equal on every worker while replicas agree."""
    return float(sum(np.asarray(w, np.float64).sum() for w in model.get_weights()))


def _python(logs):
    return {name: float(value) for name, value in logs.items()}


def fit_workers(model, dataset, *, epochs, initial_epoch, steps_per_epoch, validation_data=None, callbacks=(),
                verbose=0, check_replicas=False):  # fmt: skip
    """`model.fit` for several workers (see the module doc). Returns a `keras.callbacks.History`.

    With `check_replicas`, after every step the generator's weight digest is compared across workers (all-reduce
    of min and max); a difference stops training with an error naming the step.
    """
    strategy = model.distribute_strategy
    train_data = strategy.experimental_distribute_dataset(dataset)
    generator = model.generator

    def reduce(per_replica):
        return {name: strategy.reduce("MEAN", value, axis=None) for name, value in per_replica.items()}

    @tf.function
    def train_step(batch):
        return reduce(strategy.run(model.train_step, args=(batch,)))

    @tf.function
    def test_step(batch):
        return reduce(strategy.run(model.test_step, args=(batch,)))

    @tf.function
    def spread(local):  # how far the workers' float64 checksums are apart (0 when all agree), on every worker
        mean = strategy.reduce("MEAN", strategy.run(lambda: tf.identity(local)), axis=None)
        gap = tf.abs(local - mean) / tf.maximum(tf.abs(mean), 1.0)
        return strategy.reduce("SUM", strategy.run(lambda: tf.identity(gap)), axis=None)

    history = keras.callbacks.History()
    callback_list = keras.callbacks.CallbackList(
        list(callbacks) + [history], model=model, epochs=epochs, steps=steps_per_epoch, verbose=verbose
    )
    model.stop_training = False
    callback_list.on_train_begin()
    iterator = iter(train_data)
    first = next(iterator)
    local = [np.asarray(t) for t in tf.nest.flatten(strategy.experimental_local_results(first))]
    logger.info(
        "This worker's part of the first global batch: %d images, checksum %.10e (the workers' parts differ)",
        len(local[0]),
        float(sum(t.astype(np.float64).sum() for t in local)),
    )
    iterator = itertools.chain([first], iterator)
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        callback_list.on_epoch_begin(epoch)
        logs = {}
        for step in range(steps_per_epoch):
            callback_list.on_train_batch_begin(step)
            logs = _python(train_step(next(iterator)))
            if check_replicas:
                gap = float(spread(tf.constant(weight_digest(generator), tf.float64)))
                logger.debug("epoch %d step %d: weight digest %.10e", epoch + 1, step + 1, weight_digest(generator))
                if gap > 1e-12:  # float64 sums of identical weights agree to rounding of the mean
                    raise RuntimeError(f"workers' weights differ after epoch {epoch + 1} step {step + 1} ({gap:g})")
            callback_list.on_train_batch_end(step, logs)
            if model.stop_training:
                break
        epoch_logs = dict(logs)
        if validation_data is not None and not model.stop_training:
            model.reset_metrics()
            val_logs = {}
            for batch in strategy.experimental_distribute_dataset(validation_data):
                val_logs = _python(test_step(batch))
            epoch_logs.update({f"val_{name}": value for name, value in val_logs.items()})
        callback_list.on_epoch_end(epoch, epoch_logs)
        logger.info("worker digest after epoch %d: %.10e", epoch + 1, weight_digest(generator))
        if model.stop_training:
            break
    callback_list.on_train_end(logs=epoch_logs if epochs > initial_epoch else None)
    return history
