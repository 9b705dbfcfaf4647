"""`tf.data` pipelines that yield batches ready for training.

Batch layouts (B = batch size, S = image size):

* Lab in the map (default): `(L_n, ab_n)`, float32 `[B, S, S, 1]` in [-1, 1]
  and `[B, S, S, 2]` in about [-1, 1].
* `lab_on_device=True`: `rgb`, float32 `[B, S, S, 3]` in [0, 1]; the trainer
  converts it to Lab inside its (possibly XLA-compiled) step.
* With segmentation masks the mask, int32 `[B, S, S]` (255 = ignore), follows:
  `(L_n, ab_n, mask)` or `(rgb, mask)`.
"""

import numpy as np
import tensorflow as tf

from keras_colour import colour
from keras_colour.choices import DECODERS, check_choice
from keras_colour.data.images import (
    BROKEN,
    NATIVE_JPEG,
    PILLOW,
    SkipLog,
    classify_files,
    decode_mask,
    decode_to_rgb8,
)
from keras_colour.data.resize import resize_bilinear_antialiased
from keras_colour.errors import DataError

AUTOTUNE = tf.data.AUTOTUNE


def _decoder(skip_log, draft_size):
    def decode(path):
        path = path.decode("utf-8") if isinstance(path, bytes) else str(path)
        try:
            return decode_to_rgb8(path, draft_size), True
        except Exception as e:  # any undecodable file is skipped, never fatal
            skip_log.record(path, e)
            return np.zeros((1, 1, 3), np.uint8), False

    return decode


def _mask_decoder(skip_log):
    def decode(path):
        path = path.decode("utf-8")
        try:
            return decode_mask(path), True
        except Exception as e:
            skip_log.record(path, e)
            return np.full((1, 1), 255, np.uint8), False

    return decode


def resize_rgb(image, image_size, method="bilinear", antialias=True):
    """uint8 or float `[H, W, 3]` -> float32 `[S, S, 3]` in [0, 1]."""
    if method == "bilinear" and antialias and image.dtype == tf.uint8:
        return resize_bilinear_antialiased(image, image_size)  # the same numbers as below, faster
    image = tf.image.convert_image_dtype(image, tf.float32)
    image = tf.image.resize(image, [image_size, image_size], method=method, antialias=antialias and method != "nearest")
    return tf.clip_by_value(image, 0.0, 1.0)


def make_dataset(
    paths,
    image_size=256,
    batch_size=16,
    training=False,
    seed=42,
    resize_method="bilinear",
    antialias=True,
    flip=True,
    shuffle_buffer=2048,
    cache=False,
    lab_on_device=False,
    mask_paths=None,
    skip_log=None,
    drop_remainder=None,
    repeat=False,
    decoder="auto",
):
    """Builds a batched dataset from image paths (and optional VOC mask paths).

    Args:
        paths: list of str. Image files.
        image_size: int. Output height and width. Defaults to 256.
        batch_size: int. Defaults to 16.
        training: bool. Shuffle, flip, and drop the last partial batch.
        seed: int. Seeds the shuffle and the flips.
        resize_method: str. `bilinear` (default, with antialias), `nearest`
            (what the BBC code did), `bicubic` or `area`.
        cache: bool. Cache decoded, resized images in memory.
        lab_on_device: bool. Yield RGB and leave Lab to the training step.
        mask_paths: list of str or None. Segmentation masks, one per image;
            resized with nearest neighbour and flipped with their image.
        skip_log: `SkipLog` collecting undecodable files.
        repeat: bool. Repeat forever (for `steps_per_epoch`).
        decoder: str. `auto` (TensorFlow's native JPEG/PNG decoders where a file allows, Pillow for the rest;
            see `images.classify_files`), `native` (TensorFlow's decoders only: a file that needs Pillow is
            skipped and logged) or `pillow` (every file through Pillow, one Python call per image, as the BBC
            code's `load_img`). Native JPEG decoding uses libjpeg's accurate integer DCT, what Pillow computes.

    Returns:
        A `tf.data.Dataset` of batches in the layout described in this module.
    """
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError("No image files to read: the list of paths is empty.")
    skip_log = skip_log if skip_log is not None else SkipLog()
    with_masks = mask_paths is not None
    if with_masks and len(mask_paths) != len(paths):
        raise ValueError(f"Got {len(paths)} images but {len(mask_paths)} masks.")
    drop_remainder = training if drop_remainder is None else drop_remainder
    draft = image_size if resize_method != "nearest" else None
    decode = _decoder(skip_log, draft)
    decode_m = _mask_decoder(skip_log)
    check_choice("decoder", decoder, DECODERS)
    if decoder in ("auto", "native"):
        routes, ratios, kept = [], [], []
        for i, (route, info) in enumerate(classify_files(paths)):
            if route == BROKEN or (route == PILLOW and decoder == "native"):
                reason = info if route == BROKEN else "TensorFlow cannot decode it natively (data.decoder: native)"
                skip_log.record(paths[i], reason)
                continue
            kept.append(i)
            routes.append(route)
            ratios.append(_jpeg_ratio(info, draft) if route == NATIVE_JPEG else 0)
        if not kept:
            what = "training" if training else "test"
            examples = ", ".join(paths[:3])
            raise DataError(f"none of the {len(paths)} {what} images could be decoded (for example {examples})")
        paths = [paths[i] for i in kept]
        mask_paths = [mask_paths[i] for i in kept] if with_masks else None
    else:
        routes, ratios = [PILLOW] * len(paths), [0] * len(paths)

    columns = (paths, routes, ratios) + ((mask_paths,) if with_masks else ())
    ds = tf.data.Dataset.from_tensor_slices(tuple(tf.constant(c) for c in columns))
    if training and not cache:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)

    def read(path, route, ratio):
        def native_jpeg():
            data = tf.io.read_file(path)
            # The accurate integer DCT is libjpeg's default and Pillow's; TensorFlow's default (the fast one)
            # is up to 4 levels off Pillow on most pixels.
            branches = [
                lambda r=r: tf.io.decode_jpeg(data, channels=3, ratio=r, dct_method="INTEGER_ACCURATE")
                for r in _JPEG_RATIOS
            ]
            return tf.switch_case(ratio, branches), tf.constant(True)

        def native_png():
            return tf.io.decode_png(tf.io.read_file(path), channels=3, dtype=tf.uint8), tf.constant(True)

        def pillow():
            image, ok = tf.numpy_function(decode, [path], [tf.uint8, tf.bool], stateful=False)
            return tf.reshape(image, tf.concat([tf.shape(image)[:2], [3]], 0)), tf.reshape(ok, [])

        image, ok = tf.switch_case(route, [native_jpeg, native_png, pillow])
        image.set_shape([None, None, 3])
        return image, ok

    def load(path, route, ratio, *mask_path):
        image, ok = read(path, route, ratio)
        image = resize_rgb(image, image_size, resize_method, antialias)
        if not with_masks:
            return image, ok
        mask, ok_m = tf.numpy_function(decode_m, [mask_path[0]], [tf.uint8, tf.bool], stateful=False)
        mask.set_shape([None, None])
        mask = tf.image.resize(mask[..., None], [image_size, image_size], method="nearest")[..., 0]
        return image, tf.cast(mask, tf.int32), tf.logical_and(ok, tf.reshape(ok_m, []))

    ds = ds.map(load, num_parallel_calls=AUTOTUNE, deterministic=True)
    if decoder != "pillow":  # a file whose header and end marker looked fine but whose data is corrupt
        ds = ds.ignore_errors(log_warning=True)
    ds = ds.filter(_decoded_ok).map(_drop_flag)
    if cache:
        ds = ds.cache()
        if training:
            ds = ds.shuffle(min(len(paths), shuffle_buffer), seed=seed, reshuffle_each_iteration=True)
    if training and flip:
        # Stateless flips seeded from a seeded stream: the same seed gives the same batches.
        coins = tf.data.Dataset.random(seed=seed).batch(2)
        ds = tf.data.Dataset.zip((ds, coins)).map(_flip, num_parallel_calls=AUTOTUNE)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=AUTOTUNE)
    if not lab_on_device:
        ds = ds.map(_to_lab, num_parallel_calls=AUTOTUNE)
    else:
        ds = ds.map(_unwrap_single)
    return ds.prefetch(AUTOTUNE)


_JPEG_RATIOS = (1, 2, 4, 8)


def _jpeg_ratio(size, draft):
    """Index into `_JPEG_RATIOS` of the largest JPEG scale-down that keeps both sides >= `draft` (as Pillow's draft)."""
    if not draft:
        return 0
    width, height = size
    fits = [i for i, r in enumerate(_JPEG_RATIOS) if width // r >= draft and height // r >= draft]
    return max(fits) if fits else 0


def _decoded_ok(*item):
    return item[-1]


def _drop_flag(*item):
    return item[:-1]


def _unwrap_single(*item):
    return item if len(item) > 1 else item[0]


def _flip(item, coin):
    seed = tf.cast(coin, tf.int32)
    image = item[0]
    flipped = tf.image.stateless_random_flip_left_right(image, seed)
    if len(item) == 1:
        return (flipped,)
    # The same seed gives the same decision for the mask.
    mask = tf.image.stateless_random_flip_left_right(item[1][..., None], seed)[..., 0]
    return flipped, mask


# XLA fuses the conversion's elementwise ops: 3x faster than op by op on the CPU.
# The trainer converts `lab_on_device` batches with the same function, so both paths give the same tensors.
_rgb_to_model_inputs_xla = tf.function(colour.rgb_to_lab_normalized, jit_compile=True)


def _to_lab(*item):
    lightness, ab = _rgb_to_model_inputs_xla(item[0])
    return (lightness, ab) + tuple(item[1:])
