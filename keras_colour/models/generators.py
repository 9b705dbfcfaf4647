"""Generators: the Gorriz et al. 2019 U-Net, pix2pix and the thesis's U-Net baseline.

All three are one encoder-decoder (`encoder_decoder`) with different blocks:
Gorriz upsamples then convolves and has no dropout; pix2pix uses
transposed convolutions, no conv bias, N(0, 0.02) init and dropout on the
first three up blocks. Each can carry a segmentation head:
`shared_decoder` (2 x n_classes ab channels) or
`separate_decoders` (a colour and a segmentation decoder over one encoder).
"""

import keras
from keras import layers

from keras_colour.choices import GENERATOR_DEPTHS, NORMS, SEGMENTATION_HEADS, check_choice
from keras_colour.models import blocks
from keras_colour.models.registry import register_generator

PIX2PIX_INIT = {"mean": 0.0, "stddev": 0.02}


def _norm_plans(norm, num_downsamples):
    """Per-block normalisation of the encoder and decoder (docs/architectures: the Gorriz table)."""
    check_choice("norm", norm, NORMS)
    body = {"bn": "bn", "in": "in", "ibn": "bn", "none": "none"}[norm]
    down = ["none"] + [body] * (num_downsamples - 1)
    up = [body] * (num_downsamples - 1)
    if norm == "ibn":
        up[-1] = "in"  # their proposal: IN only in the last (64-filter) up block
    return down, up


def encoder_decoder(
    name,
    image_size,
    num_downsamples,
    base_filters,
    max_filters,
    norm,
    spectral_norm,
    instance_norm,
    segmentation,
    n_classes,
    transpose,
    dropout=0.0,
    dropout_blocks=0,
    conv_options=None,
):
    """The U-Net of every generator family: L_n `(S, S, 1)` -> ab_n `(S, S, 2)` in [-1, 1], or a segmentation head's
    outputs (see the module docstring)."""
    blocks.check_size(image_size, num_downsamples)
    check_choice("segmentation", segmentation, SEGMENTATION_HEADS)
    if segmentation != "none" and (not isinstance(n_classes, int) or n_classes < 2):
        raise ValueError(
            f"`n_classes` must be an integer >= 2 for a segmentation head. Received: n_classes={n_classes!r}"
        )
    conv_options = dict(conv_options or {})
    filters = blocks.filter_schedule(num_downsamples, base_filters, max_filters)
    down_norms, up_norms = _norm_plans(norm, num_downsamples)
    shared = dict(spectral_norm=spectral_norm, instance_norm=instance_norm, **conv_options)

    inputs = blocks.image_input(image_size, 1, "L")
    x = inputs
    skips = []
    for i, (f, n) in enumerate(zip(filters, down_norms)):
        x = blocks.down_block(x, f, f"{name}_down{i + 1}", norm=n, **shared)
        skips.append(x)
    bottleneck, skips = x, skips[:-1]

    def decoder(branch):
        y = bottleneck
        up_filters = list(reversed(filters[:-1]))
        for j, (f, skip, n) in enumerate(zip(up_filters, reversed(skips), up_norms)):
            y = blocks.up_block(
                y,
                skip,
                f,
                f"{branch}_up{j + 1}",
                norm=n,
                transpose=transpose,
                dropout=dropout if j < dropout_blocks else 0.0,
                **shared,
            )
        if not transpose:
            y = layers.UpSampling2D(2, name=f"{branch}_output_upsample")(y)
        return y

    def head(features, channels, activation, layer_name):
        return blocks.conv(
            channels,
            layer_name,
            strides=2 if transpose else 1,
            transpose=transpose,
            spectral_norm=spectral_norm,
            activation=activation,
            kernel_initializer=conv_options.get("kernel_initializer", "glorot_uniform"),
        )(features)

    if segmentation == "none":
        outputs = head(decoder(name), 2, "tanh", f"{name}_ab")
    elif segmentation == "shared_decoder":
        # One (a, b) pair per class; the loss picks each class's pair on its pixels.
        outputs = head(decoder(name), 2 * n_classes, "tanh", f"{name}_ab_per_class")
    else:
        outputs = {
            "ab": head(decoder(f"{name}_colour"), 2, "tanh", f"{name}_ab"),
            "segmentation": head(decoder(f"{name}_seg"), n_classes, None, f"{name}_segmentation"),
        }
    suffix = "" if segmentation == "none" else f"_{segmentation}"
    return keras.Model(inputs, outputs, name=f"{name}_generator{suffix}")


def _depth(num_downsamples, default):
    return default if num_downsamples is None else num_downsamples


@register_generator("gorriz")
def build_gorriz_generator(
    image_size=256,
    norm="bn",
    spectral_norm=False,
    instance_norm="channel",
    base_filters=64,
    max_filters=512,
    num_downsamples=None,
    dropout=0.0,
    segmentation="none",
    n_classes=21,
):
    """The BBC generator (Gorriz et al. 2019): upsample + conv up blocks, no dropout.

    Seven down blocks take 256x256 to a 2x2 bottleneck; each up block is nearest UpSampling2D followed by
    Conv2D(4, stride 1); a final upsample and Conv2D(2, 4, tanh) give ab.

    Args:
        image_size: int. Height and width of the square input. Defaults to 256.
        norm: str. `bn`, `in`, `ibn` (BN everywhere, IN in the last up block) or `none`. Defaults to `bn`.
        spectral_norm: str or bool. `none` (False), `keras` (True) or `bbc`: see `blocks.conv`. Defaults to False.
        instance_norm: str. `channel` (per-channel IN) or `sample` (the BBC code's whole-sample IN).
        base_filters: int. Filters of the first down block. Defaults to 64.
        max_filters: int. The cap of the filter schedule. Defaults to 512.
        num_downsamples: int. Down blocks. Defaults to 7.
        dropout: float. Unused: this architecture has no dropout. Defaults to 0.
        segmentation: str. `none`, `shared_decoder` or `separate_decoders`. Defaults to `none`.
        n_classes: int. Classes of the segmentation head. Defaults to 21 (Pascal VOC).
    """
    depth = _depth(num_downsamples, GENERATOR_DEPTHS["gorriz"])
    return encoder_decoder(
        "gorriz", image_size, depth, base_filters, max_filters, norm, spectral_norm, instance_norm, segmentation,
        n_classes, transpose=False,
    )  # fmt: skip


_PIX2PIX_CONV = dict(use_bias=False, kernel_initializer=keras.initializers.RandomNormal(**PIX2PIX_INIT))


def _pix2pix_like(
    name,
    image_size,
    norm,
    spectral_norm,
    instance_norm,
    base_filters,
    max_filters,
    num_downsamples,
    dropout,
    segmentation,
    n_classes,
):
    depth = _depth(num_downsamples, GENERATOR_DEPTHS[name])
    return encoder_decoder(
        name, image_size, depth, base_filters, max_filters, norm, spectral_norm, instance_norm, segmentation,
        n_classes, transpose=True, dropout=dropout, dropout_blocks=3, conv_options=_PIX2PIX_CONV,
    )  # fmt: skip


@register_generator("pix2pix")
def build_pix2pix_generator(
    image_size=256,
    norm="bn",
    spectral_norm=False,
    instance_norm="channel",
    base_filters=64,
    max_filters=512,
    num_downsamples=None,
    dropout=0.5,
    segmentation="none",
    n_classes=21,
):
    """The pix2pix U-Net (Isola et al. 2017), 1 channel in, 2 out.

    Eight down blocks take 256x256 to 1x1; up blocks are Conv2DTranspose(4, 2) without bias, N(0, 0.02)
    initialised, with dropout on the first three; a transposed-convolution tanh output gives ab.

    Args:
        image_size: int. Height and width of the square input. Defaults to 256.
        norm: str. `bn`, `in`, `ibn` or `none`. Defaults to `bn`.
        spectral_norm: str or bool. `none` (False), `keras` (True) or `bbc`: see `blocks.conv`. Defaults to False.
        instance_norm: str. `channel` or `sample`. Defaults to `channel`.
        base_filters: int. Filters of the first down block. Defaults to 64.
        max_filters: int. The cap of the filter schedule. Defaults to 512.
        num_downsamples: int. Down blocks. Defaults to 8.
        dropout: float. Dropout rate of the first three up blocks. Defaults to 0.5.
        segmentation: str. `none`, `shared_decoder` or `separate_decoders`. Defaults to `none`.
        n_classes: int. Classes of the segmentation head. Defaults to 21 (Pascal VOC).
    """
    return _pix2pix_like(
        "pix2pix", image_size, norm, spectral_norm, instance_norm, base_filters, max_filters, num_downsamples,
        dropout, segmentation, n_classes,
    )  # fmt: skip


@register_generator("unet")
def build_unet_generator(
    image_size=256,
    norm="bn",
    spectral_norm=False,
    instance_norm="channel",
    base_filters=64,
    max_filters=512,
    num_downsamples=None,
    dropout=0.5,
    segmentation="none",
    n_classes=21,
):
    """The thesis's L1 baseline (4.1.1): the pix2pix generator, trained without a discriminator.

    Args: as `build_pix2pix_generator`; the layers are named `unet_*`.
    """
    return _pix2pix_like(
        "unet", image_size, norm, spectral_norm, instance_norm, base_filters, max_filters, num_downsamples,
        dropout, segmentation, n_classes,
    )  # fmt: skip
