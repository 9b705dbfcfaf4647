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
import weakref
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import tensorflow as tf
from PIL import Image
from tqdm import tqdm

from keras_colour import colour
from keras_colour.data.images import decode_to_rgb8, walk_images
from keras_colour.engines import TensorFlowEngine
from keras_colour.errors import ModelFileError, UserError
from keras_colour.io_utils import atomic_path
from keras_colour.precision import Precision

logger = logging.getLogger(__name__)


class ColouriseError(UserError, ValueError):
    """colourise cannot go ahead without losing or overwriting a file; nothing was written."""


def check_output_folder(inputs, output_dir):
    """Raises `ColouriseError` if `output_dir` is one of the input folders (a second run would read the first's
    outputs). An output folder *inside* an input folder is fine: `collect_inputs` never enters it."""
    out = os.path.realpath(output_dir)
    for given in inputs:
        if os.path.isdir(given) and os.path.realpath(given) == out:
            raise ColouriseError(
                f"--output {output_dir!r} is the input folder {given!r}: a second run would colourise this run's "
                f"outputs; choose another folder (one inside it, such as {os.path.join(given, 'colourised')!r}, is "
                "left out of the input)"
            )


def collect_inputs(inputs, output_dir=None):
    """Expands files and folders (recursively, each real file once) into `(path, relative output stem)` pairs.

    With `output_dir`, a folder that is an input is refused (`check_output_folder`) and the output folder is
    never walked into, so running a command twice reads the same inputs twice.
    """
    skip = ()
    if output_dir is not None:
        check_output_folder(inputs, output_dir)
        skip = (output_dir,)
    items = []
    for given in inputs:
        if os.path.isdir(given):
            items += [(path, os.path.splitext(rel)[0]) for path, rel in walk_images(given, skip_dirs=skip)]
        elif os.path.isfile(given):
            items.append((given, os.path.splitext(os.path.basename(given))[0]))
        else:
            raise FileNotFoundError(f"Input not found: {given!r}")
    return items


def plan_outputs(items, output_dir, warn=True):
    """`[(input, output PNG)]`, checked before anything is written.

    Inputs whose stems collide (`a.jpg` and `a.png`) get their extension in the name (`a_jpg.png`, `a_png.png`),
    with a warning (unless `warn=False`). Raises `ColouriseError` if an output would replace any input file.
    """
    output_dir = os.path.abspath(output_dir)
    by_stem = {}
    for path, stem in items:
        by_stem.setdefault(stem, []).append(path)
    plan = []
    for path, stem in items:
        if len(by_stem[stem]) > 1:
            stem = f"{stem}_{os.path.splitext(path)[1].lstrip('.').lower()}"
        plan.append((path, os.path.join(output_dir, stem + ".png")))
    renamed = sorted(stem for stem, paths in by_stem.items() if len(paths) > 1)
    if renamed and warn:
        logger.warning("Inputs share a name (%s): their outputs get the extension added (a.jpg -> a_jpg.png)", renamed)
    targets = [os.path.realpath(t) for _, t in plan]
    if len(set(targets)) != len(targets):
        raise ColouriseError("two inputs would be written to the same output file; rename one of them")
    inputs = {os.path.realpath(p) for p, _ in items}
    for (_, target), real in zip(plan, targets):
        if real in inputs:
            raise ColouriseError(
                f"the output {target!r} would overwrite an input image; choose another --output folder"
            )
    return plan


def load_generator(path):
    """Loads a generator for colourise, with a clear `ModelFileError` for a file it cannot use."""
    if not os.path.exists(path):
        raise ModelFileError(f"model file not found: {path!r}")
    if not path.endswith(".keras") or not os.path.isfile(path):
        raise ModelFileError(f"{path!r} is not a .keras model file: give the generator.keras of a run")
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as e:  # Keras raises several types for a broken or foreign archive
        raise ModelFileError(f"could not load {path!r} as a Keras model ({type(e).__name__}: {e})") from None
    inputs = model.inputs
    if len(inputs) != 1 or inputs[0].shape[-1] != 1:
        shapes = [tuple(i.shape) for i in inputs]
        raise ModelFileError(
            f"{path!r} takes inputs {shapes}; colourise needs a generator from one L channel (None, H, W, 1)"
        )
    output = model.output
    if isinstance(output, (list, tuple)) or (isinstance(output, dict) and "ab" not in output):
        raise ModelFileError(f"{path!r} has several outputs and none named 'ab': it is not a colourisation generator")
    return model


def model_image_size(model):
    """`(height, width)` a generator was built for, or None when its input size is free."""
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


# Full-resolution compositions run in parallel, one per core: XLA runs each one's fused loops on one core.
COMPOSE_THREADS = max(1, min(4, os.cpu_count() or 1))

# Pixels are converted in chunks of one fixed size, so XLA compiles the
# conversion once and fuses it, whatever the images' sizes.
_CHUNK = 1 << 18
# Colours outside the gamut are gathered and their chroma scale found in chunks of a power-of-two size from
# this up to `_CHUNK` (a few compilations in all): the bisection then costs in proportion to those colours
# only, a small share of most images.
_MIN_GAMUT_CHUNK = 1 << 10


def _uint8(rgb):
    return tf.cast(tf.clip_by_value(tf.round(rgb * 255.0), 0.0, 255.0), tf.uint8)


@tf.function(jit_compile=True)
def _chunk_compose(rgb_chunk, ab_chunk):
    """A chunk's Lab (input L, predicted ab), whether each colour is inside the gamut, and its uint8 RGB (final
    wherever it is inside: the same ops as `_chunk_to_uint8` with a chroma scale of 1), in one fused pass."""
    lab = tf.concat([colour.rgb_to_lightness(rgb_chunk), ab_chunk], -1)
    linear = colour.lab_to_linear(lab)
    return lab, colour.linear_in_gamut(linear)[..., 0], _uint8(tf.clip_by_value(colour.linear_to_srgb(linear), 0, 1))


@tf.function(jit_compile=True)
def _chunk_chroma_scale(lab_chunk):
    return colour.chroma_scale(lab_chunk)


@tf.function(jit_compile=True)
def _chunk_to_uint8(lab_chunk, scale_chunk):
    return _uint8(colour.lab_to_rgb(tf.concat([lab_chunk[..., :1], lab_chunk[..., 1:] * scale_chunk], -1)))


def _chunked(values, size):
    """`values` [N, C] zero-padded to a multiple of `size` (one chunk at least) and split into `[-1, size, C]`."""
    count = tf.shape(values)[0]
    pad = tf.where(count == 0, size, (-count) % size)
    return tf.reshape(tf.pad(values, [[0, pad], [0, 0]]), [-1, size, values.shape[-1]])


@tf.function(reduce_retracing=True)
def _compose(rgb, ab_n, correction_n=None):
    """Full-resolution L of `rgb` + upsampled predicted ab (+ an upsampled correction) -> uint8 RGB.

    The same as `colour.to_uint8(colour.lab_to_rgb_keep_lightness(...))` on the whole image, with the
    bisection and the second conversion run only where a colour is outside the gamut.
    """
    shape = tf.shape(rgb)
    ab_n = tf.image.resize(ab_n[None], shape[:2], method="bilinear")[0]
    if correction_n is not None:  # the video temporal filter's, at its working size
        ab_n += tf.image.resize(correction_n[None], shape[:2], method="bilinear")[0]
    n = shape[0] * shape[1]
    lab, inside, out = tf.map_fn(
        lambda x: _chunk_compose(x[0], x[1]),
        (_chunked(tf.reshape(rgb, [-1, 3]), _CHUNK), _chunked(tf.reshape(ab_n * colour.AB_SCALE, [-1, 2]), _CHUNK)),
        fn_output_signature=(tf.float32, tf.bool, tf.uint8),
    )
    lab, out = tf.reshape(lab, [-1, 3]), tf.reshape(out, [-1, 3])
    outside = tf.where(~tf.reshape(inside, [-1]))
    count = tf.shape(outside)[0]
    size = tf.cast(2.0 ** tf.math.ceil(tf.math.log(tf.cast(tf.maximum(count, 1), tf.float32)) / np.log(2.0)), tf.int32)
    size = tf.clip_by_value(size, _MIN_GAMUT_CHUNK, _CHUNK)
    lab_outside = _chunked(tf.gather_nd(lab, outside), size)
    scales = tf.map_fn(_chunk_chroma_scale, lab_outside)
    fixed = tf.map_fn(lambda x: _chunk_to_uint8(x[0], x[1]), (lab_outside, scales), fn_output_signature=tf.uint8)
    out = tf.tensor_scatter_nd_update(out, outside, tf.reshape(fixed, [-1, 3])[:count])
    return tf.reshape(out[:n], shape)


def _predict_ab(model, rgbs):
    """Normalised ab predictions for float RGB images, one batched forward pass where sizes allow.

    `model` is a Keras generator or an engine (`keras_colour.engines`).
    """
    engine = model if hasattr(model, "predict_ab") else _default_engine(model)
    size = model_image_size(engine.model)
    if size is None:  # a fully convolutional model runs each image at its own size
        return [_predict_ab_batch(engine, [r], tf.shape(r)[:2])[0] for r in rgbs]
    return _predict_ab_batch(engine, rgbs, tf.constant(size))


_ENGINES = weakref.WeakKeyDictionary()


def _default_engine(model):
    """The TensorFlow engine of a Keras model (one per model, so its traced function is reused)."""
    engine = _ENGINES.get(model)
    if engine is None:
        engine = _ENGINES[model] = TensorFlowEngine(model)
    return engine


def _predict_ab_batch(engine, rgbs, size):
    batch = tf.stack([_model_input(r, size) for r in rgbs])
    return tf.unstack(engine.predict_ab(batch))


def colourise_array(model, rgb8, runner=None):
    """Colourises one uint8 RGB (or grayscale-as-RGB) image; returns uint8 RGB of the same size.

    In float32, or through `runner` (a `keras_colour.precision.Precision`, as `colourise_paths` uses).
    """
    rgb = tf.image.convert_image_dtype(tf.convert_to_tensor(rgb8), tf.float32)
    ab = (runner.predict(lambda m: _predict_ab(m, [rgb])) if runner else _predict_ab(model, [rgb]))[0]
    return _compose(rgb, ab).numpy()


def compose(rgb8, ab_n, correction_n=None):
    """uint8 RGB from the full-resolution L of `rgb8` and a normalised ab prediction of any size."""
    rgb = tf.image.convert_image_dtype(tf.convert_to_tensor(rgb8), tf.float32)
    return _compose(rgb, ab_n, correction_n).numpy()


def predict_frames_ab(model, rgb8_frames):
    """Normalised ab predictions (at the model's size) for uint8 RGB frames, batched where sizes allow."""
    rgbs = [tf.image.convert_image_dtype(tf.convert_to_tensor(f), tf.float32) for f in rgb8_frames]
    return _predict_ab(model, rgbs)


def colourise_paths(
    model, inputs, output_dir, batch_size=8, progress=True, png_compression=1, precision="auto", engine="auto"
):
    """Colourises files and folders into `output_dir`.

    Each image is composed at full resolution and written as PNG by a pool of threads (the composition
    runs on one core under XLA) while the next batch is predicted; `png_compression` (0-9, zlib level)
    trades file size for speed; `precision` is `float32`, `bfloat16` or `auto` (`keras_colour.precision`);
    `engine` is `auto`, `tensorflow`, `onnxruntime` or `litert` (`keras_colour.engines`).

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
    items = collect_inputs(inputs, output_dir)
    if not items:
        raise ValueError(f"No image files found in {list(inputs)}")
    plan = plan_outputs(items, output_dir)
    written, skipped, pending = [], [], []
    runner = Precision(model, precision, engine, batch_size, images=len(plan))
    bar = tqdm(total=len(plan), desc="colourise", unit="img", disable=not progress)
    writer = ThreadPoolExecutor(max_workers=COMPOSE_THREADS)

    def save(rgb, ab, alpha, target):
        array = _compose(rgb, ab).numpy()
        image = Image.fromarray(array) if alpha is None else Image.fromarray(np.dstack([array, alpha]), "RGBA")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with atomic_path(target) as tmp:
            image.save(tmp, format="PNG", compress_level=png_compression)
        bar.update(1)

    for start in range(0, len(plan), batch_size):
        chunk = []
        for path, target in plan[start : start + batch_size]:
            try:
                chunk.append((target, *decode_to_rgb8(path, with_alpha=True)))
            except Exception as e:
                logger.warning("Skipping %s: not a decodable image (%s)", path, e)
                skipped.append(path)
                bar.update(1)
        if not chunk:
            continue
        rgbs = [tf.image.convert_image_dtype(tf.convert_to_tensor(rgb), tf.float32) for _, rgb, _ in chunk]
        for future in pending[: -2 * batch_size]:  # at most two batches in flight: memory stays bounded
            future.exception()
        for (target, _, alpha), rgb, ab in zip(chunk, rgbs, runner.predict(lambda m, b=rgbs: _predict_ab(m, b))):
            pending.append(writer.submit(save, rgb, ab, alpha, target))
            written.append(target)
    failed = []
    for target, future in zip(written, pending):
        try:
            future.result()
        except OSError as e:
            failed.append(f"{target} ({e.strerror or e})")
    writer.shutdown()
    bar.close()
    if skipped:
        logger.warning("%d file(s) could not be read and were skipped: %s", len(skipped), ", ".join(skipped))
    if failed:
        raise ColouriseError(f"could not write {len(failed)} output file(s): {'; '.join(failed[:3])}")
    return written, skipped
