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

# (fx, fy, fz) -> (L + 16, a, b), as rows.
_LAB_FROM_F = np.array([[0.0, 116.0, 0.0], [500.0, -500.0, 0.0], [0.0, 200.0, -200.0]])

_F_FROM_LAB = np.array([[1 / 116, 1 / 500, 0.0], [1 / 116, 0.0, 0.0], [1 / 116, 0.0, -1 / 200]])

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
    """Multiplies the last axis of `x` by `matrix.T` (channels-last colour transform).

    A reshape to `[N, 3]` and one matmul is several times faster on the CPU
    than `tensordot` or unstack/stack arithmetic.
    """
    m = tf.constant(matrix.T, dtype=x.dtype)
    return tf.reshape(tf.matmul(tf.reshape(x, [-1, 3]), m), tf.shape(x))


def _pow(x, exponent):
    """x ** exponent for x > 0, as exp(log): faster than `tf.pow` on the CPU, same to float precision."""
    return tf.exp(exponent * tf.math.log(x))


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
        _pow((tf.maximum(rgb, _SRGB_KNEE) + 0.055) / 1.055, 2.4),
        rgb / 12.92,
    )
    xyz = _matmul_channels(linear, XYZ_FROM_RGB / D65_WHITE[:, None])
    f = tf.where(
        xyz > _LAB_EPSILON,
        _pow(tf.maximum(xyz, _LAB_EPSILON), 1.0 / 3.0),
        7.787 * xyz + 16.0 / 116.0,
    )
    # L = 116 fy - 16, a = 500 (fx - fy), b = 200 (fy - fz), as one matrix.
    return _matmul_channels(f, _LAB_FROM_F) - tf.constant([16.0, 0.0, 0.0], dtype=rgb.dtype)


def _lab_to_linear(lab):
    """CIE Lab to linear (not gamma-encoded) RGB, unclipped."""
    lab = _as_float(lab)
    _check_channels(lab, "lab")
    # fy = (L + 16) / 116, fx = fy + a / 500, fz = fy - b / 200.
    f = _matmul_channels(lab, _F_FROM_LAB) + tf.constant(16.0 / 116.0, dtype=lab.dtype)
    # skimage sets negative z to 0 (with a warning): the colour is outside the gamut.
    f = tf.maximum(f, tf.constant([-np.inf, -np.inf, 0.0], dtype=lab.dtype))
    xyz = tf.where(f > _LAB_F_KNEE, f * f * f, (f - 16.0 / 116.0) / 7.787)
    return _matmul_channels(xyz, RGB_FROM_XYZ * D65_WHITE[None, :])


def lab_to_linear(lab):
    """CIE Lab to linear (not gamma-encoded) RGB, unclipped: `lab_to_rgb` before the sRGB encoding."""
    return _lab_to_linear(lab)


def rgb_to_lightness(rgb):
    """CIE L (`[..., 1]`, in [0, 100]) of sRGB in [0, 1]: `rgb_to_lab(rgb)[..., :1]` with a third of the work."""
    rgb = _as_float(rgb)
    _check_channels(rgb, "rgb")
    linear = tf.where(rgb > _SRGB_KNEE, _pow((tf.maximum(rgb, _SRGB_KNEE) + 0.055) / 1.055, 2.4), rgb / 12.92)
    y = tf.reduce_sum(linear * tf.constant(XYZ_FROM_RGB[1], dtype=rgb.dtype), axis=-1, keepdims=True)
    fy = tf.where(y > _LAB_EPSILON, _pow(tf.maximum(y, _LAB_EPSILON), 1.0 / 3.0), 7.787 * y + 16.0 / 116.0)
    return 116.0 * fy - 16.0


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
    rgb = linear_to_srgb(_lab_to_linear(lab))
    return tf.clip_by_value(rgb, 0.0, 1.0) if clip else rgb


def linear_to_srgb(linear):
    """Linear RGB to gamma-encoded sRGB (unclipped)."""
    return tf.where(
        linear > _LINEAR_KNEE,
        1.055 * _pow(tf.maximum(linear, _LINEAR_KNEE), 1.0 / 2.4) - 0.055,
        12.92 * linear,
    )


def in_gamut(lab, tolerance=1e-4):
    """Whether Lab colours are inside the sRGB gamut (each channel in [-tolerance, 1 + tolerance]): bool `[..., 1]`.

    sRGB encoding is monotonic, so the test is done on linear RGB, without the power function.
    """
    return linear_in_gamut(_lab_to_linear(_as_float(lab)), tolerance)


def linear_in_gamut(linear, tolerance=1e-4):
    """`in_gamut` from linear RGB (`[..., 3]`): bool `[..., 1]`."""
    low_linear = -tolerance / 12.92
    high_linear = ((1.0 + tolerance + 0.055) / 1.055) ** 2.4
    return tf.reduce_all((linear >= low_linear) & (linear <= high_linear), axis=-1, keepdims=True)


def chroma_scale(lab, iterations=8, tolerance=1e-4):
    """The largest factor in [0, 1] (to 2**-iterations) by which ab can be multiplied and stay in the gamut.

    Bisection, per pixel, for colours outside the gamut; `[..., 1]`. For a colour already inside it gives
    slightly less than 1: callers keep those colours as they are (`lab_to_rgb_keep_lightness`).
    """
    lab = _as_float(lab)
    lightness, ab = lab[..., :1], lab[..., 1:]
    low, high = tf.zeros_like(lightness), tf.ones_like(lightness)
    for _ in range(iterations):
        mid = 0.5 * (low + high)
        ok = in_gamut(tf.concat([lightness, ab * mid], -1), tolerance)
        low, high = tf.where(ok, mid, low), tf.where(ok, high, mid)
    return low


def lab_to_rgb_keep_lightness(lab, iterations=8, tolerance=1e-4):
    """Lab to RGB in [0, 1], bringing out-of-gamut colours into the gamut by
    shrinking their chroma (a, b towards 0) instead of clipping RGB.

    Clipping changes the lightness of saturated colours; shrinking ab keeps L
    (up to 8-bit rounding), which is what an archivist colourising a
    photograph wants: the original grayscale detail, exactly. The largest
    in-gamut chroma scale is found per pixel by bisection (`iterations`
    halvings, `chroma_scale`; in-gamut pixels keep their colour exactly). Static shapes and
    elementwise ops only, so XLA fuses it into one pass per iteration.
    """
    lab = _as_float(lab)
    scale = tf.where(in_gamut(lab, tolerance), 1.0, chroma_scale(lab, iterations, tolerance))
    return lab_to_rgb(tf.concat([lab[..., :1], lab[..., 1:] * scale], -1))


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


def to_uint8(image):
    """Float image in [0, 1] (NumPy array or tensor) -> uint8, rounded and clipped."""
    image = image.numpy() if hasattr(image, "numpy") else np.asarray(image)
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)
