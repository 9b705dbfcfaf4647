"""CIE Lab colour maths as differentiable TensorFlow ops.

The conversions follow `skimage.color.rgb2lab` / `skimage.color.lab2rgb`
exactly (sRGB, D65 white point, 2 degree observer), so numbers produced here
can be compared with the original BBC code, which used skimage on the CPU.
They run on any leading shape, inside `tf.function`, under XLA and on a GPU.

The normalisation is the BBC code's: `L_n = L / 50 - 1` and `ab_n = ab / 110`.
"""

import numpy as np
import tensorflow as tf

# sRGB (D65) -> XYZ, the matrix skimage uses (`skimage.color.colorconv.xyz_from_rgb`).
XYZ_FROM_RGB = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ],
    dtype=np.float64,
)
RGB_FROM_XYZ = np.linalg.inv(XYZ_FROM_RGB)
# CIE XYZ tristimulus values of the D65 white point, 2 degree observer.
D65_WHITE = np.array([0.95047, 1.0, 1.08883], dtype=np.float64)

L_SCALE = 50.0
AB_SCALE = 110.0

# Thresholds of the piecewise functions, as written in skimage.
_SRGB_KNEE = 0.04045
_LINEAR_KNEE = 0.0031308
_LAB_EPSILON = 0.008856
_LAB_F_KNEE = 0.2068966


def _as_float(x):
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_floating:
        raise TypeError(
            f"Expected a float tensor with values in [0, 1]. Received dtype={x.dtype.name}; "
            "convert integer images with `tf.image.convert_image_dtype` first."
        )
    return x


def _matmul_channels(x, matrix):
    """Multiplies the last axis of `x` by `matrix.T` (channels-last colour transform)."""
    m = tf.constant(matrix.T, dtype=x.dtype)
    return tf.tensordot(x, m, axes=[[-1], [0]])


def _check_channels(x, name):
    if x.shape.rank is not None and x.shape[-1] is not None and x.shape[-1] != 3:
        raise ValueError(f"`{name}` must have 3 channels in its last axis. Received shape={x.shape}.")


def rgb_to_lab(rgb):
    """Converts sRGB in [0, 1] to CIE Lab (L in [0, 100], a and b about [-110, 110]).

    Args:
        rgb: float tensor of shape `[..., 3]`, values in [0, 1].

    Returns:
        A tensor of the same shape and dtype holding L, a, b.
    """
    rgb = _as_float(rgb)
    _check_channels(rgb, "rgb")
    # Both branches of a `tf.where` are differentiated; clamp the argument of
    # each power so the unused branch never yields inf * 0 = NaN gradients.
    linear = tf.where(
        rgb > _SRGB_KNEE,
        tf.pow((tf.maximum(rgb, _SRGB_KNEE) + 0.055) / 1.055, 2.4),
        rgb / 12.92,
    )
    xyz = _matmul_channels(linear, XYZ_FROM_RGB) / tf.constant(D65_WHITE, dtype=rgb.dtype)
    f = tf.where(
        xyz > _LAB_EPSILON,
        tf.pow(tf.maximum(xyz, _LAB_EPSILON), 1.0 / 3.0),
        7.787 * xyz + 16.0 / 116.0,
    )
    fx, fy, fz = tf.unstack(f, axis=-1)
    lightness = 116.0 * fy - 16.0
    a = 500.0 * (fx - fy)
    b = 200.0 * (fy - fz)
    return tf.stack([lightness, a, b], axis=-1)


def lab_to_rgb(lab, clip=True):
    """Converts CIE Lab to sRGB in [0, 1].

    Out-of-gamut colours are clipped to [0, 1] (as skimage does); the result is
    never NaN, and gradients stay finite.

    Args:
        lab: float tensor of shape `[..., 3]`.
        clip: bool. Clip to [0, 1]. Defaults to True.

    Returns:
        A tensor of the same shape and dtype with RGB values in [0, 1].
    """
    lab = _as_float(lab)
    _check_channels(lab, "lab")
    lightness, a, b = tf.unstack(lab, axis=-1)
    fy = (lightness + 16.0) / 116.0
    fx = a / 500.0 + fy
    # skimage sets negative z to 0 (with a warning): the colour is outside the gamut.
    fz = tf.maximum(fy - b / 200.0, 0.0)
    f = tf.stack([fx, fy, fz], axis=-1)
    xyz = tf.where(f > _LAB_F_KNEE, tf.pow(f, 3.0), (f - 16.0 / 116.0) / 7.787)
    xyz = xyz * tf.constant(D65_WHITE, dtype=lab.dtype)
    linear = _matmul_channels(xyz, RGB_FROM_XYZ)
    rgb = tf.where(
        linear > _LINEAR_KNEE,
        1.055 * tf.pow(tf.maximum(linear, _LINEAR_KNEE), 1.0 / 2.4) - 0.055,
        12.92 * linear,
    )
    return tf.clip_by_value(rgb, 0.0, 1.0) if clip else rgb


def lab_to_rgb_keep_lightness(lab, iterations=8, tolerance=1e-4):
    """Lab to RGB in [0, 1], bringing out-of-gamut colours into the gamut by
    shrinking their chroma (a, b towards 0) instead of clipping RGB.

    Clipping changes the lightness of saturated colours; shrinking ab keeps L
    (up to 8-bit rounding), which is what an archivist colourising a
    photograph wants: the original grayscale detail, exactly. The largest
    in-gamut chroma scale is found by bisection, only for the pixels that
    are out of gamut.
    """
    lab = _as_float(lab)
    shape = tf.shape(lab)
    flat = tf.reshape(lab, [-1, 3])
    rgb = lab_to_rgb(flat, clip=False)

    def in_gamut(x):
        return tf.reduce_all((x >= -tolerance) & (x <= 1.0 + tolerance), axis=-1)

    outside = tf.where(~in_gamut(rgb))[:, 0]
    bad = tf.gather(flat, outside)
    lightness, ab = bad[:, :1], bad[:, 1:]
    low, high = tf.zeros_like(lightness), tf.ones_like(lightness)
    for _ in range(iterations):
        mid = 0.5 * (low + high)
        ok = in_gamut(lab_to_rgb(tf.concat([lightness, ab * mid], -1), clip=False))[:, None]
        low, high = tf.where(ok, mid, low), tf.where(ok, high, mid)
    fixed = lab_to_rgb(tf.concat([lightness, ab * low], -1), clip=False)
    rgb = tf.tensor_scatter_nd_update(rgb, outside[:, None], fixed)
    return tf.reshape(tf.clip_by_value(rgb, 0.0, 1.0), shape)


def normalize_lab(lab):
    """Scales Lab to the network's range: `L / 50 - 1` and `ab / 110` (BBC code)."""
    lab = tf.convert_to_tensor(lab)
    lightness, ab = lab[..., :1], lab[..., 1:]
    return tf.concat([lightness / L_SCALE - 1.0, ab / AB_SCALE], axis=-1)


def denormalize_lab(lab_n):
    """Inverse of `normalize_lab`."""
    lab_n = tf.convert_to_tensor(lab_n)
    lightness, ab = lab_n[..., :1], lab_n[..., 1:]
    return tf.concat([(lightness + 1.0) * L_SCALE, ab * AB_SCALE], axis=-1)


def rgb_to_lab_normalized(rgb):
    """RGB in [0, 1] to `(L_n, ab_n)`: shapes `[..., 1]` and `[..., 2]`."""
    lab_n = normalize_lab(rgb_to_lab(rgb))
    return lab_n[..., :1], lab_n[..., 1:]


def lab_normalized_to_rgb(lightness_n, ab_n):
    """`(L_n, ab_n)` as produced by the networks back to RGB in [0, 1]."""
    lab_n = tf.concat([tf.cast(lightness_n, ab_n.dtype), ab_n], axis=-1)
    return lab_to_rgb(denormalize_lab(lab_n))
