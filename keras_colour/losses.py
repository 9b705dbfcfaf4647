"""Loss terms of the thesis's models, each returning a scalar (mean over its batch).

Callers divide by the number of replicas where a `tf.distribute` strategy is
active (see `ColourGAN`), so every function here is a plain per-batch mean.
"""

import tensorflow as tf

from keras_colour.data.voc import IGNORE_INDEX


def colour_loss(ab_true, ab_pred, kind="l1", delta=1.0):
    """L1 (or smooth L1 / Huber with `delta`) between normalised ab images."""
    diff = tf.abs(tf.cast(ab_true, tf.float32) - tf.cast(ab_pred, tf.float32))
    if kind == "l1":
        return tf.reduce_mean(diff)
    if kind == "smooth_l1":
        quadratic = tf.minimum(diff, delta)
        return tf.reduce_mean(0.5 * tf.square(quadratic) + delta * (diff - quadratic))
    raise ValueError(f"Unknown colour loss {kind!r}. Accepted values: ['l1', 'smooth_l1'].")


def _as_list(outputs):
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def discriminator_losses(real_outputs, fake_outputs, kind="lsgan"):
    """Per-scale discriminator losses, 0.5 x (real + fake) each.

    `lsgan` (Gorriz): mean squared error against 1 for real, 0 for fake.
    `bce` (pix2pix): binary cross-entropy from logits; pix2pix halves the D
    objective too.
    """
    losses = []
    for real, fake in zip(_as_list(real_outputs), _as_list(fake_outputs)):
        real, fake = tf.cast(real, tf.float32), tf.cast(fake, tf.float32)
        if kind == "lsgan":
            loss = 0.5 * (tf.reduce_mean(tf.square(real - 1.0)) + tf.reduce_mean(tf.square(fake)))
        elif kind == "bce":
            loss = 0.5 * (
                tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.ones_like(real), real))
                + tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.zeros_like(fake), fake))
            )
        else:
            raise ValueError(f"Unknown adversarial loss {kind!r}. Accepted values: ['lsgan', 'bce'].")
        losses.append(loss)
    return losses


def generator_adversarial_loss(fake_outputs, kind="lsgan"):
    """The generator's adversarial term, summed over discriminator scales."""
    total = 0.0
    for fake in _as_list(fake_outputs):
        fake = tf.cast(fake, tf.float32)
        if kind == "lsgan":
            total += tf.reduce_mean(tf.square(fake - 1.0))
        elif kind == "bce":
            total += tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.ones_like(fake), fake))
        else:
            raise ValueError(f"Unknown adversarial loss {kind!r}. Accepted values: ['lsgan', 'bce'].")
    return total


def split_class_ab(ab_per_class):
    """`[B, H, W, 2K]` -> `[B, H, W, K, 2]` (an (a, b) pair per class)."""
    shape = tf.shape(ab_per_class)
    return tf.reshape(ab_per_class, tf.concat([shape[:-1], [-1, 2]], axis=0))


def select_class_ab(ab_per_class, mask):
    """Picks, at each pixel, the (a, b) pair of that pixel's class. Ignored pixels get 0 (grey)."""
    pairs = split_class_ab(tf.cast(ab_per_class, tf.float32))
    onehot = tf.one_hot(tf.cast(mask, tf.int32), tf.shape(pairs)[-2], dtype=tf.float32)  # 255 -> all zeros
    return tf.reduce_sum(pairs * onehot[..., None], axis=-2)


def ab_prediction(outputs, mask=None):
    """A generator's output as one ab image `[B, H, W, 2]` float32, whatever its head.

    Plain generators give ab directly; `separate_decoders` gives a dict with `ab`; a shared decoder gives an
    (a, b) pair per class, and each pixel takes its class's pair, so it needs the class `mask`.
    """
    if isinstance(outputs, dict):
        outputs = outputs["ab"]
    if outputs.shape[-1] == 2:
        return tf.cast(outputs, tf.float32)
    if mask is None:
        raise ValueError(f"This generator outputs {outputs.shape[-1]} channels (one ab pair per class): a class mask is needed.")
    return select_class_ab(outputs, mask)


def shared_decoder_loss(ab_true, ab_per_class, mask, present_classes_only=False):
    """Per-class ab L1 on each class's pixels (thesis 4.3.1).

    For class k, L_k is the mean |ab_k - ab| over the pixels whose label is k
    (0 if there are none). The loss is the mean of L_k over all n_classes; the
    thesis saw that collapse to grey (most classes are absent, so the
    gradient is diluted) and proposed averaging over the classes present in
    the ground truth only, which `present_classes_only=True` does. Pixels
    labelled 255 are ignored. Returns the mean over the batch.
    """
    pairs = split_class_ab(tf.cast(ab_per_class, tf.float32))  # [B, H, W, K, 2]
    n_classes = tf.shape(pairs)[-2]
    onehot = tf.one_hot(tf.cast(mask, tf.int32), n_classes, dtype=tf.float32)  # [B, H, W, K]
    diff = tf.reduce_sum(tf.abs(pairs - tf.cast(ab_true, tf.float32)[..., None, :]), axis=-1) / 2.0
    pixels = tf.reduce_sum(onehot, axis=[1, 2])  # [B, K]
    per_class = tf.reduce_sum(diff * onehot, axis=[1, 2]) / tf.maximum(pixels, 1.0)
    if present_classes_only:
        present = tf.cast(pixels > 0, tf.float32)
        per_sample = tf.reduce_sum(per_class * present, axis=-1) / tf.maximum(tf.reduce_sum(present, axis=-1), 1.0)
    else:
        per_sample = tf.reduce_mean(per_class, axis=-1)
    return tf.reduce_mean(per_sample)


def segmentation_loss(mask, logits):
    """Sparse softmax cross-entropy over the pixels not labelled 255."""
    mask = tf.cast(mask, tf.int32)
    valid = tf.cast(tf.not_equal(mask, IGNORE_INDEX), tf.float32)
    safe = tf.where(mask == IGNORE_INDEX, tf.zeros_like(mask), mask)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe, logits=tf.cast(logits, tf.float32))
    return tf.reduce_sum(ce * valid) / tf.maximum(tf.reduce_sum(valid), 1.0)
