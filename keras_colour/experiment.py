"""The library behind `experiments/run.py`: train and evaluate one experiment in its run folder."""

import hashlib
import logging
import os
import shutil
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf

from keras_colour import callbacks as cb
from keras_colour import figures
from keras_colour.batch import BatchLayout
from keras_colour.checkpoint import TrainingCheckpoint
from keras_colour.config import ConfigError, load_config
from keras_colour.data import build_datasets, check_decodable, make_dataset, resolve_files
from keras_colour.distributed import cluster, fit_workers
from keras_colour.errors import FeatureWeightsError, NonFiniteLossError, RunExistsError
from keras_colour.evaluation import evaluate_generator, load_histograms, save_histograms, write_comparison
from keras_colour.models.perceptual import BBCPerceptualDistance
from keras_colour.run_folder import RunFolder, run_labels
from keras_colour.trainer import build_trainer, get_strategy

logger = logging.getLogger(__name__)


def configure_runtime(config):
    """Applies a config's seed and determinism settings to Keras and TensorFlow before anything is built."""
    keras.utils.set_random_seed(config.seed)
    if config.train.deterministic:
        tf.config.experimental.enable_op_determinism()
        if os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "0":
            # oneDNN's CPU kernels sum in an order that depends on thread timing (two runs on a busy machine
            # differed by 4e-3 here); TensorFlow reads the switch once, at import.
            logger.warning(
                "train.deterministic: oneDNN was on when TensorFlow was imported, so CPU results can still vary "
                "between runs. Set TF_ENABLE_ONEDNN_OPTS=0 before importing TensorFlow (keras-colour train does)."
            )


def _sample_batch(data, layout, count):
    """The first `count` test images as a `Batch`, for the per-epoch sample grids."""
    element = next(iter(data.test.unbatch().batch(count).take(1)))
    return layout.unpack(element)


def _worker_folder(run_path, index):
    """A fresh scratch folder for worker `index` of the run in `run_path` (the chief writes the run itself).

    The name is fixed per run and worker, so a worker restarted after a kill (which gave it no chance to clean
    up) removes what it left there.
    """
    key = hashlib.sha1(os.path.realpath(run_path).encode("utf-8")).hexdigest()[:12]
    path = os.path.join(tempfile.gettempdir(), f"keras-colour-worker{index}-{key}")
    if os.path.exists(path):
        logger.info("Removing %s, left by a stopped worker", path)
        shutil.rmtree(path)
    os.makedirs(path)
    return path


def _progress_verbosity(verbose):
    """Keras's progress bar (1) only on a terminal: into a log file it writes escape codes; a line per epoch (2)."""
    return 2 if verbose == 1 and not sys.stdout.isatty() else verbose


def train(config, resume=False, overwrite=False):
    """Trains the experiment `config` describes; returns the Keras `History` (None if already finished).

    Data and networks are checked before the run folder is touched. With `resume=True` the latest checkpoint
    is restored and training continues from the epoch after the last completed one; the learning rates of the
    config take effect.
    """
    config.check_paths()
    run = RunFolder(config.output_dir)
    run.check_apart_from_data(config)
    configure_runtime(config)
    strategy = get_strategy(config.train.distribute)
    # The training pipeline repeats and epochs are counted in steps, so a file skipped as undecodable
    # never ends an epoch early.
    data = build_datasets(config, global_batch_size=config.data.batch_size, repeat_train=True)
    check_decodable(data.train_probe, data.train_paths, data.skip_log, "training", config.data.batch_size)
    if data.test is not None:
        check_decodable(data.test, data.test_paths, data.skip_log, "test", config.data.batch_size)
    logger.info("Data: %s", data.summary())
    trainer = build_trainer(config, strategy, layout=data.layout)
    workers, index, is_chief = cluster() if config.train.distribute == "multi_worker" else (1, 0, True)
    shared = run  # where checkpoints are restored from (a shared file system on a cluster)
    if not is_chief:  # the others write into a folder of their own, removed at the end
        run = RunFolder(_worker_folder(shared.path, index))
        logger.info("Worker %d of %d: the chief writes the run; this worker writes into %s", index, workers, run.path)
    try:
        return _train_in(config, run, shared, trainer, data, resume, overwrite and is_chief, workers)
    finally:
        if not is_chief:
            shutil.rmtree(run.path, ignore_errors=True)


def _train_in(config, run, shared, trainer, data, resume, overwrite, workers):
    with run.open_for_training(config, resume and run is shared, overwrite):
        ckpt = TrainingCheckpoint(trainer, run.checkpoints)
        initial_epoch = ckpt.restore(shared.checkpoints) if resume else 0
        trainer.g_optimizer.learning_rate.assign(config.train.g_learning_rate)
        if trainer.d_optimizer is not None:
            trainer.d_optimizer.learning_rate.assign(config.train.d_learning_rate)
        run.align_to_checkpoint(initial_epoch)
        epochs = config.train.epochs
        if initial_epoch >= epochs:
            logger.info("Run in %s already finished (%d/%d epochs).", run.path, initial_epoch, epochs)
            return None
        stop, interrupt = cb.StopOnNonFinite(), cb.StopOnInterrupt()
        callbacks = [stop, interrupt]
        if config.train.segmentation_pretrain_epochs:
            callbacks.append(cb.SegmentationSchedule(config.train.segmentation_pretrain_epochs))
        validation = None
        if data.test is not None:
            if config.train.sample_images:
                callbacks.append(cb.SampleGrid(_sample_batch(data, data.layout, config.train.sample_images), run))
            validation = data.test
            if config.train.eval_max_images:
                validation = validation.take(max(1, config.train.eval_max_images // config.data.batch_size))
        callbacks += [
            cb.HistoryCSV(run.history, append=resume and initial_epoch > 0),
            cb.LossCurves(run),
            keras.callbacks.TensorBoard(run.logs, write_graph=False, update_freq="epoch"),
            cb.ReportSkips(data.skip_log),
            cb.EpochCheckpoint(
                ckpt, run, total_epochs=epochs, interrupt=interrupt
            ),  # last: history and samples are never behind it
        ]
        options = dict(
            epochs=epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=config.train.steps_per_epoch or data.steps_per_epoch,
            validation_data=validation,
            callbacks=callbacks,
            verbose=_progress_verbosity(config.train.verbose),
        )
        if workers > 1:  # Keras's fit cannot run on several workers (see keras_colour.distributed)
            history = fit_workers(trainer, data.train, check_replicas=config.train.check_replicas, **options)
        else:
            history = trainer.fit(data.train, shuffle=False, **options)  # the pipeline shuffles (seeded)
        if interrupt.requested:  # the cut-short epoch's history row and sample go; the checkpoint stays
            run.align_to_checkpoint((run.read_state() or {}).get("completed_epochs", 0))
            raise KeyboardInterrupt  # the command line says how to continue
    if stop.message:
        raise NonFiniteLossError(stop.message)
    return history


def _perceptual_metric(weights):
    """The BBC perceptual metric, or the reason it cannot be computed (a string, logged once)."""
    if weights == "none":
        return "evaluation.vgg19_weights is none"
    try:
        return BBCPerceptualDistance(weights)
    except FeatureWeightsError as e:
        logger.warning("perceptual_vgg19 is not computed: %s", e)
        return str(e)


def evaluate_run(run_dir, max_images=None):
    """Evaluates a run's `generator.keras` on its test set; writes metrics and histograms."""
    run = RunFolder(run_dir)
    config = run.load_config()
    generator = run.load_generator()
    _, test, _, test_masks = resolve_files(config.data, config.seed)
    if not test:
        raise ValueError(f"{run_dir!r}: its config gives no test images.")
    d = config.data
    dataset = make_dataset(
        test,
        d.image_size,
        d.batch_size,
        training=False,
        resize_method=d.resize_method,
        antialias=d.antialias,
        mask_paths=test_masks,
        decoder=d.decoder,
    )
    limit = max_images if max_images is not None else config.train.eval_max_images
    layout = BatchLayout(rgb=False, mask=test_masks is not None)
    e = config.evaluation
    results, real_hist, fake_hist = evaluate_generator(
        generator, dataset, limit, layout, e.colours, e.generator_training_mode, _perceptual_metric(e.vgg19_weights)
    )
    results["model"] = config.name
    run.write_metrics(results)
    save_histograms(run.histograms, real_hist, fake_hist)
    figures.close(figures.plot_histograms(run.histogram_plot, real_hist, {config.name: fake_hist}, title=config.name))
    logger.debug("Evaluated %s: %s", run_dir, results)  # the command line prints the metrics once
    return results


def compare_runs(run_dirs, output_dir, max_images=None, labels=None):
    """Evaluates several runs and writes the comparison table and histogram figure.

    Each run is labelled by `labels` (or its `name`, or its folder's name where names repeat: `run_labels`).
    """
    names = run_labels(run_dirs, [RunFolder(d).load_config().name for d in run_dirs], labels)
    rows, generated, reals = [], {}, {}
    for run_dir, label in zip(run_dirs, names):
        results = evaluate_run(run_dir, max_images)
        real_hist, fake_hist = load_histograms(RunFolder(run_dir).histograms)
        results["model"] = label
        generated[label], reals[label] = fake_hist, real_hist
        rows.append(results)
    md, csv_path = write_comparison(rows, output_dir)
    fig = os.path.join(output_dir, "histograms.png")
    first = next(iter(reals.values()))
    same_test_set = all(np.array_equal(r.a, first.a) and np.array_equal(r.b, first.b) for r in reals.values())
    title = "a and b histograms: real vs generated" + ("" if same_test_set else " (each run's own test set)")
    figures.close(
        figures.plot_histograms(fig, first, generated, title=title, real_by_label=None if same_test_set else reals)
    )
    return {"markdown": md, "csv": csv_path, "figure": fig, "rows": rows}


def run(config_path, overrides=(), stage="all", resume=False, overwrite=False):
    """`experiments/run.py`: load, train and/or evaluate one experiment."""
    config = load_config(config_path, overrides)
    if stage in ("train", "all"):
        train(config, resume=resume, overwrite=overwrite)
    if stage in ("evaluate", "all") and (config.train.distribute != "multi_worker" or cluster()[2]):
        return evaluate_run(config.output_dir)  # on a cluster the chief evaluates
    return None


__all__ = ["ConfigError", "NonFiniteLossError", "RunExistsError", "compare_runs", "evaluate_run", "run", "train"]
