"""Evaluating generators on a test set, comparing runs, and the thesis's figures."""

import csv
import json
import logging
import os

import numpy as np
import tensorflow as tf

from keras_colour import colour, metrics

logger = logging.getLogger(__name__)


def _to_uint8(rgb):
    return np.clip(np.round(np.asarray(rgb) * 255.0), 0, 255).astype(np.uint8)


def predict_ab(generator, lightness, mask=None):
    """Runs a generator and returns its normalised ab prediction `[B, H, W, 2]`."""
    from keras_colour.losses import ab_prediction
    from keras_colour.models.fast import call_generator

    return ab_prediction(call_generator(generator, lightness, training=False), mask)


def evaluate_generator(generator, dataset, max_images=None):
    """Computes every metric of `keras_colour.metrics` over a test pipeline.

    Args:
        generator: the L_n -> ab_n model.
        dataset: batches of `(L_n, ab_n)` or `(L_n, ab_n, mask)`.
        max_images: int or None. Stop after this many images.

    Returns:
        (results dict, real `ColourHistogram`, generated `ColourHistogram`).
    """
    real_hist, fake_hist = metrics.ColourHistogram(), metrics.ColourHistogram()
    sums = dict(psnr=0.0, psnr_ab_bbc=0.0, ssim=0.0, colourfulness_real=0.0, colourfulness_generated=0.0)
    n = 0
    for batch in dataset:
        lightness, ab = batch[0], batch[1]
        mask = batch[2] if len(batch) > 2 else None
        if max_images is not None and n >= max_images:
            break
        fake_ab = predict_ab(generator, lightness, mask)
        real_lab = colour.denormalize_lab(tf.concat([lightness, ab], -1)).numpy()
        fake_lab = colour.denormalize_lab(tf.concat([lightness, fake_ab], -1)).numpy()
        real8, fake8 = _to_uint8(colour.lab_to_rgb(real_lab)), _to_uint8(colour.lab_to_rgb(fake_lab))
        k = len(real8)
        real_hist.update(real_lab[..., 1:])
        fake_hist.update(fake_lab[..., 1:])
        # Metrics are means over images: accumulate batch means weighted by batch size.
        sums["psnr"] += k * metrics.psnr_rgb(real8, fake8)
        sums["psnr_ab_bbc"] += k * metrics.psnr_ab_bbc(real_lab[..., 1:], fake_lab[..., 1:])
        sums["ssim"] += k * metrics.ssim(real8, fake8)
        sums["colourfulness_real"] += k * metrics.colourfulness(real8)
        sums["colourfulness_generated"] += k * metrics.colourfulness(fake8)
        n += k
    if n == 0:
        raise ValueError("The test set yielded no images to evaluate.")
    results = {name: value / n for name, value in sums.items()}
    results.update(metrics.compare_histograms(real_hist, fake_hist))
    results["images"] = n
    return results, real_hist, fake_hist


def save_histograms(path, real_hist, fake_hist):
    np.savez(path, edges=metrics.HIST_EDGES, real_a=real_hist.a, real_b=real_hist.b, fake_a=fake_hist.a, fake_b=fake_hist.b)


def load_histograms(path):
    data = np.load(path)
    real, fake = metrics.ColourHistogram(), metrics.ColourHistogram()
    real.a, real.b, fake.a, fake.b = data["real_a"], data["real_b"], data["fake_a"], data["fake_b"]
    return real, fake


TABLE_COLUMNS = ("model", "js_a", "js_b", "kl_a", "kl_b", "psnr", "ssim", "psnr_ab_bbc", "colourfulness_real", "colourfulness_generated", "images")
TABLE_HEADERS = ("Model", "JS a", "JS b", "KL a", "KL b", "PSNR (RGB, dB)", "SSIM", "PSNR ab (BBC)", "Colourfulness real", "Colourfulness generated", "Images")


def write_comparison(rows, output_dir):
    """Writes `comparison.md` and `comparison.csv` in the layout of thesis Tables 2 and 3."""
    os.makedirs(output_dir, exist_ok=True)
    csv_path = os.path.join(output_dir, "comparison.csv")
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(TABLE_COLUMNS)
        for row in rows:
            writer.writerow([row[c] for c in TABLE_COLUMNS])

    def fmt(value):
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(TABLE_HEADERS) + " |", "|" + "---|" * len(TABLE_HEADERS)]
    lines += ["| " + " | ".join(fmt(row[c]) for c in TABLE_COLUMNS) + " |" for row in rows]
    md_path = os.path.join(output_dir, "comparison.md")
    with open(md_path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n\nJS: base 2, in [0, 1]. KL(real || generated): nats. See keras_colour.metrics.\n")
    return md_path, csv_path


def write_metrics(path, results):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
