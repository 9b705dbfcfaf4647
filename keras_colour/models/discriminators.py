"""Discriminators: the pix2pix PatchGAN and Gorriz's multi-resolution discriminators.

Both take two inputs, `L` (H, W, 1) and `ab` (H, W, 2), and judge their
concatenation, as a conditional GAN does.
"""

import keras
from keras import layers

from keras_colour.choices import NORMS, check_choice
from keras_colour.models import blocks
from keras_colour.models.registry import register_discriminator


def _conditional_inputs(image_size):
    lightness = blocks.image_input(image_size, 1, "L")
    ab = blocks.image_input(image_size, 2, "ab")
    return [lightness, ab], layers.Concatenate(name="condition_concat")([lightness, ab])


def _check_multiple(image_size, step, why):
    if not isinstance(image_size, int) or image_size < step or image_size % step:
        raise ValueError(
            f"image_size={image_size!r} must be a multiple of {step} ({why}): {step}, {2 * step}, {4 * step}, ..."
        )


def _d_norm_plan(norm, num_blocks):
    check_choice("norm", norm, NORMS)
    if norm == "ibn":  # Gorriz IBN: 64 none, 128 IN, 256 and 512 BN
        return ["none", "in"] + ["bn"] * (num_blocks - 2)
    return ["none"] + [norm] * (num_blocks - 1)


@register_discriminator("patchgan")
def build_patchgan_discriminator(
    image_size=256, norm="bn", spectral_norm=False, instance_norm="channel", base_filters=64, scales=1
):
    """The 70x70 PatchGAN of pix2pix : 30x30 logits at 256x256.

    Args:
        image_size: int. Defaults to 256; must be a multiple of 8.
        norm: str. `bn` (pix2pix), `in` or `none`.
        spectral_norm: str or bool. `none` (False), `keras` (True) or `bbc`: see `blocks.conv`.
        base_filters: int. Filters of the first block (64).
        scales: int. Must be 1 (PatchGAN is single-scale).
    """
    if scales != 1:
        raise ValueError(
            f"`scales` must be 1 for patchgan; use kind 'multiscale' for several. Received: scales={scales!r}"
        )
    _check_multiple(image_size, 8, "patchgan halves it 3 times")
    opts = dict(
        spectral_norm=spectral_norm,
        instance_norm=instance_norm,
        use_bias=False,
        kernel_initializer=keras.initializers.RandomNormal(0.0, 0.02),
    )
    inputs, x = _conditional_inputs(image_size)
    norms = _d_norm_plan(norm, 4)
    for i, f in enumerate([base_filters, base_filters * 2, base_filters * 4]):
        x = blocks.down_block(x, f, f"patchgan_down{i + 1}", norm=norms[i], **opts)
    x = layers.ZeroPadding2D(name="patchgan_pad1")(x)
    x = blocks.down_block(x, base_filters * 8, "patchgan_down4", norm=norms[3], strides=1, padding="valid", **opts)
    x = layers.ZeroPadding2D(name="patchgan_pad2")(x)
    x = blocks.conv(
        1,
        "patchgan_logits",
        padding="valid",
        spectral_norm=spectral_norm,
        kernel_initializer=opts["kernel_initializer"],
    )(x)
    return keras.Model(inputs, x, name="patchgan_discriminator")


@register_discriminator("multiscale")
def build_multiscale_discriminator(
    image_size=256, norm="bn", spectral_norm=False, instance_norm="channel", base_filters=64, scales=3
):
    """Gorriz et al.'s multi-resolution discriminators .

    Scale `s` (0-based) sees the input average-pooled `s` times and has its own
    weights: down 64 (no norm), 128, 256, 512, then Conv2D(1, 4, stride 1),
    linear. Maps are 16x16, 8x8 and 4x4 at 256x256. The model's output is a
    list with one patch map per scale.

    Args:
        image_size: int. Defaults to 256.
        norm: str. `bn`, `in`, `ibn` (64 none, 128 IN, 256 and 512 BN) or `none`.
        spectral_norm: str or bool. `none` (False), `keras` (True) or `bbc`: see `blocks.conv`.
        instance_norm: str. `channel` or `sample`, as for the generator.
        base_filters: int. Filters of the first block (64).
        scales: int. 1, 2 or 3.
    """
    if not isinstance(scales, int) or not 1 <= scales <= 3:
        raise ValueError(f"`scales` must be 1, 2 or 3. Received: scales={scales!r}")
    _check_multiple(image_size, 2**scales, f"each of the {scales} scale(s) halves it and must stay even")
    filters = [min(base_filters * 2**i, base_filters * 8) for i in range(4)]
    norms = _d_norm_plan(norm, 4)
    inputs, x = _conditional_inputs(image_size)
    outputs = []
    for s in range(scales):
        name = f"multiscale_s{s + 1}"
        y = x
        for p in range(s):
            y = layers.AveragePooling2D(2, padding="same", name=f"{name}_pool{p + 1}")(y)
        for i, (f, n) in enumerate(zip(filters, norms)):
            y = blocks.down_block(
                y, f, f"{name}_down{i + 1}", norm=n, spectral_norm=spectral_norm, instance_norm=instance_norm
            )
        outputs.append(blocks.conv(1, f"{name}_logits", spectral_norm=spectral_norm)(y))
    return keras.Model(inputs, outputs, name="multiscale_discriminator")
