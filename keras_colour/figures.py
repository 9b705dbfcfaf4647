"""Figures of the thesis: histograms, loss curves, sample grids, qualitative grids.

A plotting leaf: it takes arrays, files and loaded models, and imports nothing that imports it back
(not the run folder, not the experiment library). Used by the training callbacks, `keras-colour
evaluate` and the notebooks, which hold no plotting code of their own.
"""

import csv
import glob
import os

import matplotlib

# A headless backend unless one that draws inline (Jupyter) or on screen was chosen before this import.
if matplotlib.get_backend().lower() != "agg" and "inline" not in matplotlib.get_backend().lower():
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw
from tensorflow.core.util import event_pb2

from keras_colour import colour
from keras_colour.colourise import colourise_array, model_image_size
from keras_colour.data.images import decode_to_rgb8


def _finish(fig, path):
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=100)
    return fig


def close(fig):
    plt.close(fig)


def plot_histograms(path, real_hist, generated, title=None):
    """Log a and b histograms, real vs each generated one (thesis Figures 8 and 10).

    Args:
        path: str. PNG to write.
        real_hist: `ColourHistogram` of the real test images.
        generated: dict of label -> `ColourHistogram`.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    centres = real_hist.centres
    for ax, channel in zip(axes, ("a", "b")):
        ax.plot(centres, real_hist.log_density(channel), color="black", linewidth=2, label="real")
        for label, hist in generated.items():
            ax.plot(centres, hist.log_density(channel), label=label)
        ax.set_xlabel(f"{channel} (Lab)")
        ax.set_ylabel("log(count / images)")
        ax.set_xlim(-110, 110)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


def plot_loss_curves(history_path, png_path=None, title=None):
    """Generator and discriminator losses per term over epochs (thesis Figures 12 to 14)."""
    if not os.path.isfile(history_path):
        return
    with open(history_path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    epochs = [int(r["epoch"]) + 1 for r in rows]
    groups = [("Generator", "g_"), ("Discriminator", "d_")]
    groups = [(t, p) for t, p in groups if any(k.startswith(p) for k in rows[0])]
    fig, axes = plt.subplots(1, len(groups), figsize=(6 * len(groups), 4), squeeze=False)
    for ax, (name, prefix) in zip(axes[0], groups):
        for key in rows[0]:
            if key.startswith(prefix) or key.startswith("val_" + prefix):
                values = [float(r[key]) if r[key] not in ("", None) else np.nan for r in rows]
                ax.plot(epochs, values, marker="o", linestyle="--" if key.startswith("val_") else "-", label=key)
        ax.set_title(f"{title or ''} {name} losses".strip())
        ax.set_xlabel("epoch")
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.legend(fontsize=7)
    return _finish(fig, png_path)


def save_sample_grid(lightness, ab, fake_ab, path=None):
    """Saves (and returns) a grid: grayscale input | prediction | ground truth, one row per image.

    Args:
        lightness: L_n `[B, H, W, 1]`. ab: the real ab_n. fake_ab: the predicted ab_n.
        path: str or None. PNG to write.
    """
    gray = colour.lab_normalized_to_rgb(lightness, tf.zeros_like(ab))
    fake = colour.lab_normalized_to_rgb(lightness, fake_ab)
    real = colour.lab_normalized_to_rgb(lightness, ab)
    rows = tf.concat([gray, fake, real], axis=2)  # columns side by side
    grid = colour.to_uint8(tf.reshape(rows, [-1, rows.shape[2], 3]))
    if path:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.fromarray(grid).save(path)
    return grid


def read_tensorboard_scalars(log_dir):
    """Reads the epoch scalars Keras's TensorBoard callback wrote: {"train/epoch_g_loss": [(step, value), ...]}."""
    scalars = {}
    for path in sorted(glob.glob(os.path.join(log_dir, "*", "events.out.tfevents.*"))):
        split = os.path.basename(os.path.dirname(path))
        for record in tf.data.TFRecordDataset(path):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor)) if value.HasField("tensor") else value.simple_value
                scalars.setdefault(f"{split}/{value.tag}", []).append((int(event.step), number))
    return scalars


def plot_tensorboard_scalars(scalars, tags, path=None, title=None):
    """Plots TensorBoard epoch scalars (from `read_tensorboard_scalars`), train and validation together."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for tag in tags:
        for split in ("train", "validation"):
            points = scalars.get(f"{split}/{tag}")
            if points:
                steps, values = zip(*sorted(points))
                ax.plot(
                    np.array(steps) + 1,
                    values,
                    marker="o",
                    linestyle="-" if split == "train" else "--",
                    label=f"{split} {tag}",
                )
    ax.set_xlabel("epoch")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title)
    return _finish(fig, path)


def _label(image, text):
    im = Image.fromarray(image)
    ImageDraw.Draw(im).text((3, 2), text, fill=(255, 255, 0))
    return np.asarray(im)


def qualitative_grid(models, image_paths, path=None, labels=True):
    """A grid like the thesis's Figure 9: grayscale input, each model's colourisation, ground truth.

    Args:
        models: dict of label -> generator (`keras.Model`).
        image_paths: list of str. One row per image, shown at the first model's input size.
        path: str or None. PNG to write. labels: bool. Write the column labels on the tiles.

    Returns:
        The grid as a uint8 array.
    """
    first = next(iter(models.values()))
    size = model_image_size(first) or (256, 256)
    rows = []
    for image_path in image_paths:
        rgb = np.asarray(Image.fromarray(decode_to_rgb8(image_path)).resize(size[::-1], Image.BICUBIC))
        lightness = colour.rgb_to_lab(rgb / 255.0)[..., :1]
        gray = colour.to_uint8(
            colour.lab_to_rgb(tf.concat([lightness, tf.zeros(rgb.shape[:2] + (2,), lightness.dtype)], -1))
        )
        cells = [("input", gray)] + [(n, colourise_array(m, rgb)) for n, m in models.items()] + [("ground truth", rgb)]
        rows.append(np.concatenate([_label(c, t) if labels else c for t, c in cells], axis=1))
    grid = np.concatenate(rows, axis=0)
    if path:
        Image.fromarray(grid).save(path)
    return grid


def full_resolution_colourisations(models, image_paths, output_dir):
    """Colourises each image at its full resolution with each model; returns {(label, image): png path}."""
    os.makedirs(output_dir, exist_ok=True)
    written = {}
    for name, model in models.items():
        for image_path in image_paths:
            stem = os.path.splitext(os.path.basename(image_path))[0]
            target = os.path.join(output_dir, f"{name}_{stem}_full.png")
            Image.fromarray(colourise_array(model, decode_to_rgb8(image_path))).save(target)
            written[(name, image_path)] = target
    return written
