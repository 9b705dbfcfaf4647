"""The building blocks every network shares: one down block, one up block.

`down(f)` = Conv2D(f, 4, stride 2, 'same') -> [norm] -> LeakyReLU(0.2);
`up(f, skip)` = UpSampling2D(2) -> Conv2D(f, 4, 'same') -> [norm] -> ReLU -> concat(skip).
pix2pix uses the same blocks with a transposed convolution in place of upsample + conv.
"""

import keras
import tensorflow as tf
from keras import layers

from keras_colour.choices import INSTANCE_NORM_MODES, SPECTRAL_NORMS, check_choice
from keras_colour.models.layers import BBCSpectralNormalization, SampleInstanceNormalization


def spectral_norm_mode(spectral_norm):
    """`none`, `keras` or `bbc`; `False`/`True` are accepted for `none`/`keras`."""
    if isinstance(spectral_norm, bool):
        return "keras" if spectral_norm else "none"
    check_choice("spectral_norm", spectral_norm, SPECTRAL_NORMS)
    return spectral_norm


def conv(
    filters,
    name,
    kernel_size=4,
    strides=1,
    spectral_norm=False,
    transpose=False,
    use_bias=True,
    kernel_initializer="glorot_uniform",
    activation=None,
    padding="same",
):
    """A Conv2D (or Conv2DTranspose), wrapped in spectral normalisation where asked.

    `spectral_norm`: `none` (or False), `keras` (or True: Keras's `SpectralNormalization`, one power
    iteration) or `bbc` (`BBCSpectralNormalization`, the BBC code's `ConvSN2D`). The wrapper takes the
    stable name so the layer names are the same with and without spectral norm (`gorriz_down3_conv`).
    """
    mode = spectral_norm_mode(spectral_norm)
    cls = layers.Conv2DTranspose if transpose else layers.Conv2D
    layer = cls(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=use_bias,
        kernel_initializer=kernel_initializer,
        activation=activation,
        name=f"{name}_inner" if mode != "none" else name,
    )
    if mode == "keras":
        return layers.SpectralNormalization(layer, power_iterations=1, name=name)
    if mode == "bbc":
        return BBCSpectralNormalization(layer, name=name)
    return layer


def normalization(kind, name, instance_norm="channel"):
    """Returns a normalisation layer, or None for `kind='none'`.

    `in` is instance normalisation. Per channel (`GroupNormalization(groups=-1)`)
    is what the Gorriz paper describes; `instance_norm='sample'` is the BBC
    code's keras-contrib `InstanceNormalization(axis=None)`, which normalised
    each sample over H, W and C together (`SampleInstanceNormalization`).
    """
    if kind == "none" or kind is None:
        return None
    if kind == "bn":
        # Under a distribution strategy, batch statistics are taken over the global
        # batch, so N replicas train exactly as one device would.
        return layers.BatchNormalization(synchronized=tf.distribute.has_strategy(), name=f"{name}_bn")
    if kind == "in":
        check_choice("instance_norm", instance_norm, INSTANCE_NORM_MODES)
        if instance_norm == "sample":
            return SampleInstanceNormalization(epsilon=1e-3, name=f"{name}_in")
        return layers.GroupNormalization(groups=-1, epsilon=1e-3, name=f"{name}_in")
    raise ValueError(f"Unknown normalisation {kind!r} for a single layer. Accepted values: ['bn', 'in', 'none'].")


def down_block(x, filters, name, norm="bn", spectral_norm=False, instance_norm="channel", strides=2, **conv_options):
    """Conv2D(filters, 4, `strides`) -> [norm] -> LeakyReLU(0.2), the encoder and discriminator block."""
    x = conv(filters, f"{name}_conv", strides=strides, spectral_norm=spectral_norm, **conv_options)(x)
    norm_layer = normalization(norm, name, instance_norm)
    if norm_layer is not None:
        x = norm_layer(x)
    return layers.LeakyReLU(negative_slope=0.2, name=f"{name}_lrelu")(x)


def up_block(
    x,
    skip,
    filters,
    name,
    norm="bn",
    spectral_norm=False,
    instance_norm="channel",
    transpose=False,
    dropout=0.0,
    **conv_options,
):
    """[UpSampling2D -> Conv2D(4)] or Conv2DTranspose(4, 2) -> [norm] -> [Dropout] -> ReLU -> concat(skip)."""
    if transpose:
        x = conv(filters, f"{name}_conv", strides=2, transpose=True, spectral_norm=spectral_norm, **conv_options)(x)
    else:
        x = layers.UpSampling2D(2, name=f"{name}_upsample")(x)
        x = conv(filters, f"{name}_conv", strides=1, spectral_norm=spectral_norm, **conv_options)(x)
    norm_layer = normalization(norm, name, instance_norm)
    if norm_layer is not None:
        x = norm_layer(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    x = layers.ReLU(name=f"{name}_relu")(x)
    if skip is not None:
        x = layers.Concatenate(name=f"{name}_concat")([x, skip])
    return x


def filter_schedule(num_downsamples, base_filters, max_filters):
    """64, 128, 256, 512, 512, ... capped at `max_filters`."""
    return [min(base_filters * 2**i, max_filters) for i in range(num_downsamples)]


def check_size(image_size, num_downsamples, option="num_downsamples"):
    """Raises `ValueError` unless `image_size` can be halved `num_downsamples` times, saying what would do."""
    if not isinstance(image_size, int) or image_size <= 0:
        raise ValueError(f"`image_size` must be a positive integer. Received: image_size={image_size!r}")
    if not isinstance(num_downsamples, int) or num_downsamples < 1:
        raise ValueError(f"`{option}` must be a positive integer. Received: {option}={num_downsamples!r}")
    step = 2**num_downsamples
    if image_size % step:
        largest = 0
        while image_size % 2 ** (largest + 1) == 0:
            largest += 1
        raise ValueError(
            f"image_size={image_size} cannot be halved {num_downsamples} times ({option}={num_downsamples}). "
            f"With {option}={num_downsamples}, use a multiple of {step} ({step}, {2 * step}, {4 * step}, ...); "
            f"with image_size={image_size}, use {option} <= {largest}."
        )


def image_input(image_size, channels, name):
    """A square `keras.Input` of `image_size` x `image_size` x `channels` named `name`."""
    return keras.Input((image_size, image_size, channels), name=name)
