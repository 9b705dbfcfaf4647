"""Evaluating generators on a test set, comparing runs, and the thesis's figures."""

import csv
import logging
import os

import numpy as np
import tensorflow as tf

from keras_colour import colour, metrics
from keras_colour.batch import BatchLayout
from keras_colour.choices import EVALUATION_COLOURS, check_choice
from keras_colour.heads import head_for_model

logger = logging.getLogger(__name__)


def _measured_colours(lab, colours):
    """(uint8 RGB, Lab) that the metrics see: displayed as BBC `models/test.py` did, or the network's raw Lab."""
    if colours == "displayed":
        return metrics.displayed(lab)
    return colour.to_uint8(colour.lab_to_rgb(lab)), lab


def evaluate_generator(
    generator, dataset, max_images=None, layout=None, colours="displayed", training_mode=False, perceptual=None
):
    """Computes every metric of `keras_colour.metrics` over a test pipeline.

    Args:
        generator: the L_n -> ab_n model.
        dataset: batches laid out as `layout` says.
        max_images: int or None. Stop after this many images.
        layout: `BatchLayout` of the dataset. Defaults to `(L_n, ab_n)`.
        colours: str. `displayed` (gamut-clipped, uint8, Lab again: the BBC evaluation) or `raw_lab`.
        training_mode: bool. Run the generator with dropout and batch statistics (thesis 2.3.2).
        perceptual: a `keras_colour.models.perceptual.BBCPerceptualDistance`, or a string saying why there is
            none (then `perceptual_vgg19` is None and `perceptual_vgg19_not_computed` holds the reason).

    Returns:
        (results dict, real `ColourHistogram`, generated `ColourHistogram`).
    """
    real_hist, fake_hist = metrics.ColourHistogram(), metrics.ColourHistogram()
    sums = dict(psnr=0.0, psnr_ab_bbc=0.0, l1_ab_bbc=0.0, ssim=0.0, colourfulness_real=0.0, colourfulness_generated=0.0)
    if perceptual is not None and not isinstance(perceptual, str):
        sums["perceptual_vgg19"] = 0.0
    check_choice("evaluation colours", colours, EVALUATION_COLOURS)
    head = head_for_model(generator)
    layout = layout or BatchLayout()
    n = 0
    for data in dataset:
        if max_images is not None and n >= max_images:
            break
        batch = layout.unpack(data)
        if max_images is not None:  # exactly max_images in all
            batch = batch.first(max_images - n)
        fake_ab = head.ab(generator(batch.lightness, training=training_mode), batch.mask)
        real8, real_lab = _measured_colours(
            colour.denormalize_lab(tf.concat([batch.lightness, batch.ab], -1)).numpy(), colours
        )
        fake8, fake_lab = _measured_colours(
            colour.denormalize_lab(tf.concat([batch.lightness, fake_ab], -1)).numpy(), colours
        )
        k = len(real8)
        real_hist.update(real_lab[..., 1:])
        fake_hist.update(fake_lab[..., 1:])
        # Metrics are means over images: accumulate batch means weighted by batch size.
        sums["psnr"] += k * metrics.psnr_rgb(real8, fake8)
        sums["psnr_ab_bbc"] += k * metrics.psnr_ab_bbc(real_lab[..., 1:], fake_lab[..., 1:])
        sums["l1_ab_bbc"] += k * metrics.l1_ab_bbc(real_lab[..., 1:], fake_lab[..., 1:])
        sums["ssim"] += k * metrics.ssim(real8, fake8)
        if "perceptual_vgg19" in sums:
            sums["perceptual_vgg19"] += float(np.sum(perceptual(real8, fake8)))
        sums["colourfulness_real"] += k * metrics.colourfulness(real8)
        sums["colourfulness_generated"] += k * metrics.colourfulness(fake8)
        n += k
    if n == 0:
        raise ValueError("The test set yielded no images to evaluate.")
    results = {name: value / n for name, value in sums.items()}
    if "perceptual_vgg19" not in results:
        results["perceptual_vgg19"] = None
        results["perceptual_vgg19_not_computed"] = perceptual or "no perceptual metric was given to evaluate_generator"
    results.update(metrics.compare_histograms(real_hist, fake_hist))
    results.update(images=n, colours=colours, generator_training_mode=bool(training_mode))
    return results, real_hist, fake_hist


def save_histograms(path, real_hist, fake_hist):
    """Writes the real and generated a/b histograms (counts per bin of `metrics.HIST_EDGES`) to an `.npz` file."""
    np.savez(
        path,
        edges=metrics.HIST_EDGES,
        images=real_hist.images,
        real_a=real_hist.a,
        real_b=real_hist.b,
        fake_a=fake_hist.a,
        fake_b=fake_hist.b,
    )


def load_histograms(path):
    """Reads `save_histograms`'s file back as `(real, generated)` `ColourHistogram`s."""
    data = np.load(path)
    real, fake = metrics.ColourHistogram(), metrics.ColourHistogram()
    real.a, real.b, fake.a, fake.b = data["real_a"], data["real_b"], data["fake_a"], data["fake_b"]
    real.images = fake.images = int(data["images"])
    return real, fake


TABLE_COLUMNS = (
    "model",
    "js_a",
    "js_b",
    "kl_a",
    "kl_b",
    "psnr",
    "ssim",
    "psnr_ab_bbc",
    "l1_ab_bbc",
    "perceptual_vgg19",
    "colourfulness_real",
    "colourfulness_generated",
    "images",
)
TABLE_HEADERS = (
    "Model",
    "JS a",
    "JS b",
    "KL a",
    "KL b",
    "PSNR (RGB, dB)",
    "SSIM",
    "PSNR ab (BBC)",
    "L1 ab (BBC)",
    "Perceptual VGG19 (BBC)",
    "Colourfulness real",
    "Colourfulness generated",
    "Images",
)


def write_comparison(rows, output_dir):
    """Writes `comparison.md` and `comparison.csv` in the layout of thesis Tables 2 and 3."""
    os.makedirs(output_dir, exist_ok=True)
    csv_path = os.path.join(output_dir, "comparison.csv")
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(TABLE_COLUMNS)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else row[c] for c in TABLE_COLUMNS])

    def fmt(value):
        if value is None:
            return "n/a"
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(TABLE_HEADERS) + " |", "|" + "---|" * len(TABLE_HEADERS)]
    lines += ["| " + " | ".join(fmt(row.get(c)) for c in TABLE_COLUMNS) + " |" for row in rows]
    md_path = os.path.join(output_dir, "comparison.md")
    with open(md_path, "w", encoding="utf-8") as f:
        f.write(
            "\n".join(lines) + "\n\nJS: base 2, in [0, 1]. KL(real || generated): nats. L1 ab: Lab units. "
            "n/a: not computed (metrics.json says why). See keras_colour.metrics.\n"
        )
    return md_path, csv_path
