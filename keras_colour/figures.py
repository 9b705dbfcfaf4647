"""Figures of the thesis, drawn from run folders: histograms, loss curves, sample grids.

Used by the training callbacks, `keras-colour evaluate` and the notebooks, which hold no plotting code
of their own.
"""

import csv
import glob
import os

import numpy as np
import tensorflow as tf

from keras_colour import colour


def close(fig):
    _pyplot().close(fig)


def _pyplot():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg",) and "inline" not in matplotlib.get_backend().lower():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_histograms(path, real_hist, generated, title=None):
    """Log a and b histograms, real vs each generated one (thesis Figures 8 and 10).

    Args:
        path: str. PNG to write.
        real_hist: `ColourHistogram` of the real test images.
        generated: dict of label -> `ColourHistogram`.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    centres = real_hist.centres
    for ax, channel in zip(axes, ("a", "b")):
        ax.plot(centres, np.log10(getattr(real_hist, channel) + 1), color="black", linewidth=2, label="real")
        for label, hist in generated.items():
            ax.plot(centres, np.log10(getattr(hist, channel) + 1), label=label)
        ax.set_xlabel(f"{channel} (Lab)")
        ax.set_ylabel("log10(count + 1)")
        ax.set_xlim(-110, 110)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=100)
    return fig


def plot_loss_curves(history_path, png_path=None, title=None):
    """Generator and discriminator losses per term over epochs (thesis Figures 12 to 14)."""
    plt = _pyplot()
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
    fig.tight_layout()
    if png_path:
        fig.savefig(png_path, dpi=100)
    return fig


def save_sample_grid(generator, batch, path, segmentation="none"):
    """Saves (and returns) a grid: grayscale input | prediction | ground truth, one row per image."""
    from PIL import Image

    from keras_colour.evaluation import predict_ab

    lightness, ab = batch[0], batch[1]
    mask = batch[2] if len(batch) > 2 else None
    fake_ab = predict_ab(generator, lightness, mask, segmentation)
    gray = colour.lab_normalized_to_rgb(lightness, tf.zeros_like(ab))
    fake = colour.lab_normalized_to_rgb(lightness, fake_ab)
    real = colour.lab_normalized_to_rgb(lightness, ab)
    rows = tf.concat([gray, fake, real], axis=2)  # columns side by side
    grid = tf.reshape(rows, [-1, rows.shape[2], 3]).numpy()
    grid = np.clip(np.round(grid * 255), 0, 255).astype(np.uint8)
    if path:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.fromarray(grid).save(path)
    return grid


def read_tensorboard_scalars(log_dir):
    """Reads the epoch scalars Keras's TensorBoard callback wrote: {"train/epoch_g_loss": [(step, value), ...]}."""
    from tensorflow.core.util import event_pb2

    scalars = {}
    for path in sorted(glob.glob(os.path.join(log_dir, "*", "events.out.tfevents.*"))):
        split = os.path.basename(os.path.dirname(path))
        for record in tf.data.TFRecordDataset(path):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor)) if value.HasField("tensor") else value.simple_value
                scalars.setdefault(f"{split}/{value.tag}", []).append((int(event.step), number))
    return scalars
