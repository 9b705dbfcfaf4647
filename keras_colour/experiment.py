"""The library behind `experiments/run.py`: train and evaluate one experiment.

A run folder holds the resolved `config.yaml`, `checkpoints/`,
`generator.keras`, TensorBoard `logs/`, `history.csv`, `loss_curves.png`,
`samples/epoch_NNN.png` (grayscale input, prediction, ground truth),
`metrics.json`, `histograms.npz` and `histograms.png`.
"""

import json
import logging
import math
import os

import keras
import tensorflow as tf

from keras_colour import colour, figures
from keras_colour.checkpoint import EpochCheckpoint, TrainingCheckpoint
from keras_colour.config import ConfigError, config_from_dict, save_config

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"


class RunExistsError(RuntimeError):
    """The output folder already holds a run and neither resume nor overwrite was asked."""


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; training was stopped."""


def run_paths(output_dir):
    return {
        "config": os.path.join(output_dir, "config.yaml"),
        "checkpoints": os.path.join(output_dir, "checkpoints"),
        "generator": os.path.join(output_dir, "generator.keras"),
        "logs": os.path.join(output_dir, "logs"),
        "history": os.path.join(output_dir, "history.csv"),
        "curves": os.path.join(output_dir, "loss_curves.png"),
        "samples": os.path.join(output_dir, "samples"),
        "metrics": os.path.join(output_dir, "metrics.json"),
        "histograms": os.path.join(output_dir, "histograms.npz"),
        "histogram_plot": os.path.join(output_dir, "histograms.png"),
        "state": os.path.join(output_dir, STATE_FILE),
    }


def read_state(output_dir):
    path = os.path.join(output_dir, STATE_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load_run_config(run_dir):
    import yaml

    path = os.path.join(run_dir, "config.yaml")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{run_dir!r} is not a run folder: it has no config.yaml")
    with open(path, encoding="utf-8") as f:
        return config_from_dict(yaml.safe_load(f), source=path)


# -- callbacks -------------------------------------------------------------------
class StopOnNonFinite(keras.callbacks.Callback):
    """Stops training at the first NaN or infinite loss, naming the term and the step."""

    def __init__(self):
        super().__init__()
        self.message = None
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        for name, value in (logs or {}).items():
            if not math.isfinite(float(value)):
                self.message = (
                    f"Loss term {name!r} became {float(value)} at epoch {self.epoch + 1}, step {batch + 1}. "
                    "Training stopped; the last completed epoch's checkpoint is intact. Try a lower learning rate, "
                    "mixed_precision: none, or check the input data."
                )
                self.model.stop_training = True
                return


class SegmentationSchedule(keras.callbacks.Callback):
    """Separate decoders: segmentation only for the first `pretrain_epochs`, then both tasks."""

    def __init__(self, pretrain_epochs):
        super().__init__()
        self.pretrain_epochs = pretrain_epochs

    def on_epoch_begin(self, epoch, logs=None):
        self.model.colour_on.assign(0.0 if epoch < self.pretrain_epochs else 1.0)


class SampleGrid(keras.callbacks.Callback):
    """Saves a grid of test colourisations each epoch: grayscale input | prediction | ground truth."""

    def __init__(self, batch, directory):
        super().__init__()
        self.batch = batch
        self.directory = directory

    def on_epoch_end(self, epoch, logs=None):
        figures.save_sample_grid(self.model.generator, self.batch, os.path.join(self.directory, f"epoch_{epoch + 1:03d}.png"))


class LossCurves(keras.callbacks.Callback):
    """Redraws `loss_curves.png` from `history.csv` after every epoch (thesis Figures 12 to 14)."""

    def __init__(self, history_path, png_path):
        super().__init__()
        self.history_path = history_path
        self.png_path = png_path

    def on_epoch_end(self, epoch, logs=None):
        fig = figures.plot_loss_curves(self.history_path, self.png_path)
        if fig is not None:
            figures.close(fig)


class ReportSkips(keras.callbacks.Callback):
    def __init__(self, skip_log):
        super().__init__()
        self.skip_log = skip_log

    def on_train_end(self, logs=None):
        self.skip_log.report()


# -- stages ----------------------------------------------------------------------
def prepare_run_dir(config, resume=False, overwrite=False):
    """Creates the run folder; refuses to write over an existing run unless asked."""
    import shutil

    out = config.output_dir
    paths = run_paths(out)
    existing = os.path.isfile(paths["config"]) or os.path.isdir(paths["checkpoints"])
    if existing and not resume:
        if not overwrite:
            state = read_state(out) or {}
            what = "a finished run" if state.get("finished") else "a run"
            raise RunExistsError(
                f"{out!r} already holds {what}. Pass --resume to continue it, --overwrite to replace it, "
                "or set output_dir to a new folder."
            )
        shutil.rmtree(out)
    os.makedirs(out, exist_ok=True)
    save_config(config, paths["config"])
    return paths


def configure_runtime(config):
    keras.utils.set_random_seed(config.seed)
    if config.train.deterministic:
        tf.config.experimental.enable_op_determinism()


def train(config, resume=False, overwrite=False):
    """Trains the experiment `config` describes; returns the Keras `History`.

    With `resume=True` the latest checkpoint in the run folder is restored and
    training continues from the epoch after the last completed one.
    """
    from keras_colour.data import build_datasets
    from keras_colour.trainer import build_trainer, get_strategy

    config.check_paths()
    paths = prepare_run_dir(config, resume, overwrite)
    configure_runtime(config)
    strategy = get_strategy(config.train.distribute)
    # The training pipeline repeats and epochs are counted in steps, so a file
    # skipped as undecodable never ends an epoch early.
    data = build_datasets(config, global_batch_size=config.data.batch_size, repeat_train=True)
    steps_per_epoch = config.train.steps_per_epoch or data.steps_per_epoch
    logger.info("Data: %s", data.summary())
    trainer = build_trainer(config, strategy)
    ckpt = TrainingCheckpoint(trainer, paths["checkpoints"])
    initial_epoch = ckpt.restore() if resume else 0
    epochs = config.train.epochs
    if initial_epoch >= epochs:
        logger.info("Run in %s already finished (%d/%d epochs).", config.output_dir, initial_epoch, epochs)
        return None
    stop = StopOnNonFinite()
    callbacks = [
        stop,
        EpochCheckpoint(ckpt, paths["generator"], paths["state"], total_epochs=epochs),
        keras.callbacks.CSVLogger(paths["history"], append=resume and initial_epoch > 0),
        LossCurves(paths["history"], paths["curves"]),
        keras.callbacks.TensorBoard(paths["logs"], write_graph=False, update_freq="epoch"),
        ReportSkips(data.skip_log),
    ]
    if config.train.segmentation_pretrain_epochs:
        callbacks.append(SegmentationSchedule(config.train.segmentation_pretrain_epochs))
    validation = None
    if data.test is not None:
        if config.train.sample_images:
            sample = next(iter(data.test.unbatch().batch(config.train.sample_images).take(1)))
            sample = tuple(sample) if isinstance(sample, (tuple, list)) else (sample,)
            if sample[0].shape[-1] == 3:  # lab_on_device pipelines yield RGB
                sample = colour.rgb_to_lab_normalized(sample[0]) + sample[1:]
            callbacks.append(SampleGrid(sample, paths["samples"]))
        validation = data.test
        if config.train.eval_max_images:
            validation = validation.take(max(1, config.train.eval_max_images // config.data.batch_size))
    history = trainer.fit(
        data.train,
        epochs=epochs,
        initial_epoch=initial_epoch,
        steps_per_epoch=steps_per_epoch,
        validation_data=validation,
        callbacks=callbacks,
        verbose=config.train.verbose,
        shuffle=False,  # the pipeline shuffles (seeded)
    )
    if stop.message:
        raise NonFiniteLossError(stop.message)
    return history


def evaluate_run(run_dir, max_images=None):
    """Evaluates a run's `generator.keras` on its test set; writes metrics and histograms."""
    from keras_colour.data import make_dataset, resolve_files
    from keras_colour.evaluation import evaluate_generator, save_histograms, write_metrics
    from keras_colour.figures import close, plot_histograms

    config = load_run_config(run_dir)
    paths = run_paths(run_dir)
    if not os.path.isfile(paths["generator"]):
        raise FileNotFoundError(f"{run_dir!r} has no generator.keras yet: train it first.")
    generator = keras.models.load_model(paths["generator"], compile=False)
    _, test, _, test_masks = resolve_files(config.data, config.seed)
    if not test:
        raise ValueError(f"{run_dir!r}: its config gives no test images.")
    d = config.data
    dataset = make_dataset(test, d.image_size, d.batch_size, training=False, resize_method=d.resize_method, antialias=d.antialias, mask_paths=test_masks)
    limit = max_images if max_images is not None else config.train.eval_max_images
    results, real_hist, fake_hist = evaluate_generator(generator, dataset, limit)
    results["model"] = config.name
    write_metrics(paths["metrics"], results)
    save_histograms(paths["histograms"], real_hist, fake_hist)
    close(plot_histograms(paths["histogram_plot"], real_hist, {config.name: fake_hist}, title=config.name))
    logger.info("Evaluated %s: %s", run_dir, results)
    return results


def compare_runs(run_dirs, output_dir, max_images=None):
    """Evaluates several runs and writes the comparison table and histogram figure."""
    from keras_colour.evaluation import load_histograms, write_comparison
    from keras_colour.figures import close, plot_histograms

    rows, generated, real = [], {}, None
    for run_dir in run_dirs:
        results = evaluate_run(run_dir, max_images)
        real_hist, fake_hist = load_histograms(run_paths(run_dir)["histograms"])
        real = real if real is not None else real_hist
        label = results["model"]
        if label in generated:
            label = f"{label} ({os.path.basename(os.path.normpath(run_dir))})"
            results["model"] = label
        generated[label] = fake_hist
        rows.append(results)
    md, csv_path = write_comparison(rows, output_dir)
    fig = os.path.join(output_dir, "histograms.png")
    close(plot_histograms(fig, real, generated, title="a and b histograms: real vs generated"))
    return {"markdown": md, "csv": csv_path, "figure": fig, "rows": rows}


def run(config_path, overrides=(), stage="all", resume=False, overwrite=False):
    """`experiments/run.py`: load, train and/or evaluate one experiment."""
    from keras_colour.config import load_config

    config = load_config(config_path, overrides)
    if stage in ("train", "all"):
        train(config, resume=resume, overwrite=overwrite)
    if stage in ("evaluate", "all"):
        return evaluate_run(config.output_dir)
    return None


__all__ = ["ConfigError", "NonFiniteLossError", "RunExistsError", "compare_runs", "evaluate_run", "run", "train"]
