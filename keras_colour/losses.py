"""Loss objects of the thesis's models, looked up by the names in `keras_colour.choices`.

Colour losses compare normalised ab images; adversarial losses judge discriminator outputs (one patch
map or a list of them, one per scale). Each returns a plain per-batch mean; `ColourGAN` divides by the
number of replicas where a `tf.distribute` strategy is active.
"""

import tensorflow as tf

from keras_colour import choices
from keras_colour.data.voc import IGNORE_INDEX


def _as_list(outputs):
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


class L1:
    """Mean absolute error between normalised ab images."""

    def __call__(self, ab_true, ab_pred):
        return tf.reduce_mean(tf.abs(tf.cast(ab_true, tf.float32) - tf.cast(ab_pred, tf.float32)))


class SmoothL1:
    """Huber loss with threshold `delta` (quadratic below it, linear above).

    Args:
        delta: float. Defaults to 1.0.
    """

    def __init__(self, delta=1.0):
        self.delta = float(delta)

    def __call__(self, ab_true, ab_pred):
        diff = tf.abs(tf.cast(ab_true, tf.float32) - tf.cast(ab_pred, tf.float32))
        quadratic = tf.minimum(diff, self.delta)
        return tf.reduce_mean(0.5 * tf.square(quadratic) + self.delta * (diff - quadratic))


class AdversarialLoss:
    """A GAN objective defined by one per-scale comparison of outputs against a target (1 real, 0 fake)."""

    def against(self, outputs, target):
        """The loss of one patch map against the constant `target`."""
        raise NotImplementedError

    def discriminator(self, real_outputs, fake_outputs):
        """Per-scale discriminator losses, 0.5 x (real + fake) each (pix2pix halves the D objective too)."""
        return [
            0.5 * (self.against(real, 1.0) + self.against(fake, 0.0))
            for real, fake in zip(_as_list(real_outputs), _as_list(fake_outputs))
        ]

    def generator(self, fake_outputs):
        """The generator's adversarial term, summed over discriminator scales."""
        return tf.add_n([self.against(fake, 1.0) for fake in _as_list(fake_outputs)])


class LSGAN(AdversarialLoss):
    """Least squares (Gorriz): mean squared error against the target; what Keras 2's `mse` computed."""

    def against(self, outputs, target):
        return tf.reduce_mean(tf.square(tf.cast(outputs, tf.float32) - target))


class BCE(AdversarialLoss):
    """Binary cross-entropy from logits (pix2pix)."""

    def against(self, outputs, target):
        logits = tf.cast(outputs, tf.float32)
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.fill(tf.shape(logits), target), logits))


COLOUR_LOSSES = {}
ADVERSARIAL_LOSSES = {}


def register_colour_loss(name):
    """Registers a colour loss under `name`, usable as `loss.colour: NAME` (see docs/extending.md).

    Decorates a factory called with the config's `loss` section (`LossConfig`, for its options) that returns
    the loss: a callable `(ab_true, ab_pred) -> scalar` on normalised ab `[B, H, W, 2]` in about [-1, 1]. The
    loss may instead return a dict of named parts with a `colour` entry; it then declares the other names
    in `extra_terms`, and each part is weighted by `loss.colour_weight`, added to the generator loss and
    logged as `g_colour` or `g_NAME` in `history.csv`.
    """
    return choices.registrar(COLOUR_LOSSES, choices.COLOUR_LOSSES, "colour loss")(name)


def register_adversarial_loss(name):
    """Registers an adversarial loss under `name` (`loss.adversarial: NAME`): a class like `LSGAN`, called with no
    arguments, whose `against(outputs, target)` compares one patch map with the constant target (1 or 0)."""
    return choices.registrar(ADVERSARIAL_LOSSES, choices.ADVERSARIAL_LOSSES, "adversarial loss")(name)


register_colour_loss("l1")(lambda options: L1())
register_colour_loss("smooth_l1")(lambda options: SmoothL1(options.smooth_l1_delta))
register_adversarial_loss("lsgan")(LSGAN)
register_adversarial_loss("bce")(BCE)
choices.check_registry("COLOUR_LOSSES", COLOUR_LOSSES, choices.COLOUR_LOSSES)
choices.check_registry("ADVERSARIAL_LOSSES", ADVERSARIAL_LOSSES, choices.ADVERSARIAL_LOSSES)


def colour_loss(kind, options=None):
    """The colour loss called `kind` (`l1`, `smooth_l1` or a registered one), built from `options`.

    Args:
        kind: str. A registered name.
        options: `keras_colour.config.LossConfig` or None (its defaults).
    """
    from keras_colour.config import LossConfig  # noqa: PLC0415 (TensorFlow-free, but not needed at import)

    choices.check_choice("colour loss", kind, choices.COLOUR_LOSSES)
    return COLOUR_LOSSES[kind](options if options is not None else LossConfig())


def adversarial_loss(kind):
    """The adversarial loss called `kind` (`lsgan`, `bce` or a registered one)."""
    choices.check_choice("adversarial loss", kind, choices.ADVERSARIAL_LOSSES)
    return ADVERSARIAL_LOSSES[kind]()


def split_class_ab(ab_per_class):
    """`[B, H, W, 2K]` -> `[B, H, W, K, 2]` (an (a, b) pair per class)."""
    shape = tf.shape(ab_per_class)
    return tf.reshape(ab_per_class, tf.concat([shape[:-1], [-1, 2]], axis=0))


def select_class_ab(ab_per_class, mask):
    """Picks, at each pixel, the (a, b) pair of that pixel's class. Ignored pixels get 0 (grey)."""
    pairs = split_class_ab(tf.cast(ab_per_class, tf.float32))
    onehot = tf.one_hot(tf.cast(mask, tf.int32), tf.shape(pairs)[-2], dtype=tf.float32)  # 255 -> all zeros
    return tf.reduce_sum(pairs * onehot[..., None], axis=-2)


def shared_decoder_loss(ab_true, ab_per_class, mask, present_classes_only=False, target="grey_elsewhere"):
    """Per-class ab L1 of a shared decoder (thesis 4.3.1); the mean over the batch.

    For class k, `L_k` is the mean over pixels of `|ab_k - t_k|` (averaged over a and b):

    * `target="grey_elsewhere"`: over every pixel not labelled 255, with `t_k` the ground-truth ab on
      class k's pixels and grey (0) on all others. Most classes are absent from an image, so most pairs
      are pulled to grey everywhere: the collapse to grey the thesis reports.
    * `target="class_pixels"`: over class k's own pixels only (`L_k = 0` for an absent class).

    The loss is the mean of `L_k` over all classes, or with `present_classes_only=True` over the classes
    present in the ground truth (the thesis's proposed fix).
    """
    choices.check_choice("shared decoder target", target, choices.SHARED_DECODER_TARGETS)
    pairs = split_class_ab(tf.cast(ab_per_class, tf.float32))  # [B, H, W, K, 2]
    n_classes = tf.shape(pairs)[-2]
    onehot = tf.one_hot(tf.cast(mask, tf.int32), n_classes, dtype=tf.float32)  # [B, H, W, K]; 255 -> zeros
    pixels = tf.reduce_sum(onehot, axis=[1, 2])  # [B, K]
    if target == "grey_elsewhere":
        valid = tf.cast(tf.not_equal(tf.cast(mask, tf.int32), IGNORE_INDEX), tf.float32)[..., None]  # [B, H, W, 1]
        targets = onehot[..., None] * tf.cast(ab_true, tf.float32)[..., None, :]  # ab on the class, 0 elsewhere
        diff = tf.reduce_sum(tf.abs(pairs - targets), axis=-1) / 2.0 * valid
        per_class = tf.reduce_sum(diff, axis=[1, 2]) / tf.maximum(tf.reduce_sum(valid, axis=[1, 2]), 1.0)
    else:
        diff = tf.reduce_sum(tf.abs(pairs - tf.cast(ab_true, tf.float32)[..., None, :]), axis=-1) / 2.0
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
