"""Colourise photographs of any size with a saved generator.

The model runs at its own input size; its ab prediction is upsampled
(bilinear) to the input's full resolution and joined to the input's own
full-resolution L, so no detail of the original is lost. Colours outside the
sRGB gamut are brought in by shrinking their chroma, which keeps L.
Outputs are PNG files (lossless, so L survives) under the output folder,
with the inputs' relative folders and file stems.
"""

import logging
import os
from concurrent.futures import ThreadPoolExecutor

import tensorflow as tf
from PIL import Image
from tqdm import tqdm

from keras_colour import colour
from keras_colour.data.images import decode_to_rgb8, is_image_file
from keras_colour.heads import predict_ab

logger = logging.getLogger(__name__)


def collect_inputs(inputs):
    """Expands files and folders (recursively) into `(path, relative output stem)` pairs."""
    items = []
    for given in inputs:
        if os.path.isdir(given):
            for dirpath, dirnames, filenames in os.walk(given):
                dirnames.sort()
                for name in sorted(filenames):
                    if is_image_file(name):
                        path = os.path.join(dirpath, name)
                        items.append((path, os.path.splitext(os.path.relpath(path, given))[0]))
        elif os.path.isfile(given):
            items.append((given, os.path.splitext(os.path.basename(given))[0]))
        else:
            raise FileNotFoundError(f"Input not found: {given!r}")
    return items


def model_image_size(model):
    shape = model.input_shape
    if isinstance(shape, list):
        shape = shape[0]
    if shape[1] is None or shape[2] is None:
        return None
    return int(shape[1]), int(shape[2])


@tf.function(reduce_retracing=True)
def _model_input(rgb, size):
    small = tf.image.resize(rgb[None], size, method="bilinear", antialias=True)
    return colour.rgb_to_lab_normalized(small)[0][0]


# Pixels are converted in chunks of one fixed size, so XLA compiles the
# conversion once and fuses it, whatever the images' sizes.
_CHUNK = 1 << 18


@tf.function(jit_compile=True)
def _lab_chunk_to_rgb(rgb_chunk, ab_chunk):
    lightness = colour.rgb_to_lab(rgb_chunk)[:, :1]
    return colour.lab_to_rgb_keep_lightness(tf.concat([lightness, ab_chunk], -1))


@tf.function(reduce_retracing=True)
def _compose(rgb, ab_n):
    """Full-resolution L of `rgb` + upsampled predicted ab -> RGB in [0, 1]."""
    shape = tf.shape(rgb)
    ab = tf.image.resize(ab_n[None], shape[:2], method="bilinear")[0] * colour.AB_SCALE
    n = shape[0] * shape[1]
    pad = (-n) % _CHUNK
    rgb_flat = tf.reshape(tf.pad(tf.reshape(rgb, [-1, 3]), [[0, pad], [0, 0]]), [-1, _CHUNK, 3])
    ab_flat = tf.reshape(tf.pad(tf.reshape(ab, [-1, 2]), [[0, pad], [0, 0]]), [-1, _CHUNK, 2])
    out = tf.map_fn(lambda x: _lab_chunk_to_rgb(x[0], x[1]), (rgb_flat, ab_flat), fn_output_signature=tf.float32)
    return tf.reshape(tf.reshape(out, [-1, 3])[:n], shape)


def _predict_ab(model, rgbs):
    """Normalised ab predictions for float RGB images, one batched forward pass where sizes allow."""
    size = model_image_size(model)
    if size is None:  # a fully convolutional model runs each image at its own size
        return [_predict_ab_batch(model, [r], tf.shape(r)[:2])[0] for r in rgbs]
    return _predict_ab_batch(model, rgbs, tf.constant(size))


def _predict_ab_batch(model, rgbs, size):
    batch = tf.stack([_model_input(r, size) for r in rgbs])
    return tf.unstack(predict_ab(model, batch))


def colourise_array(model, rgb8):
    """Colourises one uint8 RGB (or grayscale-as-RGB) image; returns uint8 RGB of the same size."""
    rgb = tf.image.convert_image_dtype(tf.convert_to_tensor(rgb8), tf.float32)
    return colour.to_uint8(_compose(rgb, _predict_ab(model, [rgb])[0]))


def colourise_paths(model, inputs, output_dir, batch_size=8, progress=True, png_compression=1):
    """Colourises files and folders into `output_dir`.

    PNG files are written by a background thread while the next batch is
    computed; `png_compression` (0-9, zlib level) trades file size for speed.

    Returns:
        (written paths, skipped paths). An unreadable file is skipped with a
        message; the rest are still colourised. Inputs are never overwritten.
    """
    output = model.output["ab"] if isinstance(model.output, dict) else model.output
    out_channels = output.shape[-1]
    if out_channels != 2:
        raise ValueError(
            f"The model outputs {out_channels} channels; colourise needs a generator with 2 (ab) outputs. "
            "A shared-decoder model (an ab pair per class) needs a class mask and cannot colourise on its own."
        )
    items = collect_inputs(inputs)
    if not items:
        raise ValueError(f"No image files found in {list(inputs)}")
    output_dir = os.path.abspath(output_dir)
    written, skipped, pending = [], [], []
    bar = tqdm(total=len(items), desc="colourise", unit="img", disable=not progress)
    writer = ThreadPoolExecutor(max_workers=1)

    def save(array, target):
        Image.fromarray(array).save(target, compress_level=png_compression)
        bar.update(1)

    for start in range(0, len(items), batch_size):
        chunk = []
        for path, stem in items[start : start + batch_size]:
            try:
                chunk.append((path, stem, decode_to_rgb8(path)))
            except Exception as e:
                logger.warning("Skipping %s: not a decodable image (%s)", path, e)
                skipped.append(path)
                bar.update(1)
        if not chunk:
            continue
        rgbs = [tf.image.convert_image_dtype(tf.convert_to_tensor(a), tf.float32) for _, _, a in chunk]
        for (path, stem, _), rgb, ab in zip(chunk, rgbs, _predict_ab(model, rgbs)):
            target = os.path.join(output_dir, stem + ".png")
            if os.path.exists(path) and os.path.exists(target) and os.path.samefile(path, target):
                raise ValueError(f"Refusing to overwrite the input {path!r}; choose another --output folder.")
            os.makedirs(os.path.dirname(target), exist_ok=True)
            pending.append(writer.submit(save, colour.to_uint8(_compose(rgb, ab)), target))
            written.append(target)
    for future in pending:
        future.result()  # re-raises a failed write
    writer.shutdown()
    bar.close()
    if skipped:
        logger.warning("%d file(s) could not be read and were skipped: %s", len(skipped), ", ".join(skipped))
    return written, skipped
