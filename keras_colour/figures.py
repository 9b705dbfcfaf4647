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
from matplotlib.ticker import MaxNLocator  # noqa: E402
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
    """Closes a Matplotlib figure made here (figures are kept open for notebooks until closed)."""
    plt.close(fig)


def plot_histograms(path, real_hist, generated, title=None, real_by_label=None):
    """Log a and b histograms, real vs each generated one (thesis Figures 8 and 10).

    Args:
        path: str. PNG to write.
        real_hist: `ColourHistogram` of the real test images.
        generated: dict of label -> `ColourHistogram`.
        title: str or None.
        real_by_label: dict of label -> the real `ColourHistogram` of that run's own test set, when runs were
            measured on different test sets: each is drawn dashed in its run's colour instead of one black line.
    """
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    centres = real_hist.centres
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, channel in zip(axes, ("a", "b")):
        if not real_by_label:
            ax.plot(centres, real_hist.log_density(channel), color="black", linewidth=2.5, label="real")
        for i, (label, hist) in enumerate(generated.items()):
            colour_i = colours[i % len(colours)]
            ax.plot(centres, hist.log_density(channel), color=colour_i, linewidth=1.5, label=label)
            if real_by_label:
                ax.plot(centres, real_by_label[label].log_density(channel), color=colour_i, linestyle="--",
                        linewidth=1.5, label=f"{label}: real")  # fmt: skip
        ax.set_title(f"{channel} channel")
        ax.set_xlabel(f"{channel} (CIE Lab)")
        ax.set_ylabel("log(count / images)")
        ax.set_xlim(-110, 110)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=9, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 0.8, 1))
    if path:
        fig.savefig(path, dpi=100)
    return fig


def _loss_panels(columns):
    """Generator terms in one panel, the discriminator's total and each scale in another."""
    names = [c for c in columns if c != "epoch" and not c.startswith("val_")]
    generator = [n for n in names if n.startswith("g_") and n != "g_feature_ratio"]
    discriminator = [n for n in names if n.startswith("d_")]
    panels = [("Generator losses", generator)] if generator else []
    if discriminator:
        panels.append(("Discriminator losses (total and per scale)", discriminator))
    return panels


def _draw_loss_panels(series, title=None):
    """The loss-curve figure from `{name: (epochs, values)}`, names as in `history.csv` (`val_` for validation).

    One panel for the generator's terms, one for the discriminator (total and per scale); each term has one
    colour, solid for training and dashed for validation; legends sit beside the panels.
    """
    panels = _loss_panels(series)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, len(panels), figsize=(7.5 * len(panels), 4.5), squeeze=False)
    for ax, (panel_title, keys) in zip(axes[0], panels):
        for i, key in enumerate(keys):
            for split, style in ((key, "-"), (f"val_{key}", "--")):
                if split in series:
                    epochs, values = series[split]
                    label = f"{key} ({'validation' if split.startswith('val_') else 'training'})"
                    ax.plot(epochs, values, color=colours[i % len(colours)], linestyle=style, marker=".", label=label)
        ax.set_title(f"{title}: {panel_title}" if title else panel_title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def plot_loss_curves(history_path, png_path=None, title=None):
    """Generator and discriminator losses per term over epochs, from `history.csv` (thesis Figures 12 to 14)."""
    if not os.path.isfile(history_path):
        return None
    with open(history_path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    epochs = [int(r["epoch"]) for r in rows]  # history.csv counts epochs from 1
    series = {
        key: (epochs, [float(r[key]) if r[key] not in ("", None) else np.nan for r in rows])
        for key in rows[0]
        if key != "epoch"
    }
    return _finish(_draw_loss_panels(series, title), png_path)


def _upscale(image, min_size):
    """Nearest-neighbour upscale of a uint8 image so that its smaller side is at least `min_size`."""
    factor = max(1, int(np.ceil(min_size / min(image.shape[:2]))))
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def _with_header(grid, titles, tile_width, height=24):
    """Adds a white header row with one centred title per column of width `tile_width`."""
    header = Image.new("RGB", (grid.shape[1], height), "white")
    draw = ImageDraw.Draw(header)
    for i, text in enumerate(titles):
        width = draw.textlength(text)
        draw.text((i * tile_width + max(2, (tile_width - width) / 2), 6), text, fill="black")
    return np.concatenate([np.asarray(header), grid], axis=0)


def save_sample_grid(lightness, ab, fake_ab, path=None, min_tile=160):
    """Saves (and returns) a grid: grayscale input | prediction | ground truth, one row per image.

    Tiles are upscaled (nearest) to at least `min_tile` pixels and the columns are titled.

    Args:
        lightness: L_n `[B, H, W, 1]`. ab: the real ab_n. fake_ab: the predicted ab_n.
        path: str or None. PNG to write.
    """
    gray = colour.lab_normalized_to_rgb(lightness, tf.zeros_like(ab))
    fake = colour.lab_normalized_to_rgb(lightness, fake_ab)
    real = colour.lab_normalized_to_rgb(lightness, ab)
    tiles = [[_upscale(colour.to_uint8(img[i]), min_tile) for img in (gray, fake, real)] for i in range(len(gray))]
    rows = [np.concatenate(row, axis=1) for row in tiles]
    grid = _with_header(np.concatenate(rows, axis=0), ["grayscale input", "prediction", "ground truth"],
                        tiles[0][0].shape[1])  # fmt: skip
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
    """The loss-curve figure of `plot_loss_curves` from TensorBoard epoch scalars (`read_tensorboard_scalars`).

    `tags` are Keras's epoch tags (`epoch_g_loss`, ...); training and validation share a colour per term.
    """
    series = {}
    for tag in tags:
        key = tag.removeprefix("epoch_")
        for split, name in (("train", key), ("validation", f"val_{key}")):
            points = scalars.get(f"{split}/{tag}")
            if points:
                steps, values = zip(*sorted(points))
                series[name] = (np.array(steps) + 1, values)  # TensorBoard's steps count epochs from 0
    return _finish(_draw_loss_panels(series, title), path)


def qualitative_grid(models, image_paths, path=None, labels=True, min_tile=256):
    """A grid like the thesis's Figure 9: grayscale input, each model's colourisation, ground truth.

    Args:
        models: dict of label -> generator (`keras.Model`).
        image_paths: list of str. One row per image, at the first model's input size, tiles upscaled to at
            least `min_tile` pixels.
        path: str or None. PNG to write. labels: bool. Title the columns in a header row.

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
        cells = [gray] + [colourise_array(m, rgb) for m in models.values()] + [rgb]
        rows.append(np.concatenate([_upscale(c, min_tile) for c in cells], axis=1))
    grid = np.concatenate(rows, axis=0)
    if labels:
        grid = _with_header(grid, ["grayscale input", *models, "ground truth"], grid.shape[1] // (len(models) + 2))
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
