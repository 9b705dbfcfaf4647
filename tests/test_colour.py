import numpy as np
import pytest
import skimage.color
import tensorflow as tf

from keras_colour import colour


def test_rgb_to_lab_matches_skimage_on_random_rgb(rng):
    rgb = rng.random((4, 32, 32, 3))
    ours = colour.rgb_to_lab(tf.constant(rgb, tf.float32)).numpy()
    ref = skimage.color.rgb2lab(rgb)
    assert np.max(np.abs(ours - ref)) < 1e-3


def test_rgb_to_lab_matches_skimage_on_photographs(photos):
    for photo in photos:
        rgb = photo.astype(np.float32) / 255.0
        ours = colour.rgb_to_lab(rgb).numpy()
        ref = skimage.color.rgb2lab(photo)
        assert np.max(np.abs(ours - ref)) < 1e-3


def test_lab_to_rgb_matches_skimage(rng):
    lab = skimage.color.rgb2lab(rng.random((16, 16, 3)))
    ours = colour.lab_to_rgb(tf.constant(lab, tf.float32)).numpy()
    assert np.max(np.abs(ours - skimage.color.lab2rgb(lab))) < 1e-4


def test_round_trip(rng):
    rgb = tf.constant(rng.random((2, 64, 64, 3)), tf.float32)
    back = colour.lab_to_rgb(colour.rgb_to_lab(rgb))
    assert np.max(np.abs(back.numpy() - rgb.numpy())) < 1e-4
    rgb64 = tf.constant(rng.random((64, 3)), tf.float64)
    assert np.max(np.abs(colour.lab_to_rgb(colour.rgb_to_lab(rgb64)).numpy() - rgb64.numpy())) < 1e-10


def test_any_leading_shape():
    x = tf.fill([2, 3, 4, 5, 3], 0.5)
    assert colour.rgb_to_lab(x).shape == (2, 3, 4, 5, 3)
    assert colour.rgb_to_lab(tf.constant([0.2, 0.4, 0.6])).shape == (3,)


@pytest.mark.parametrize("fn", [colour.rgb_to_lab, lambda x: colour.lab_to_rgb(colour.rgb_to_lab(x))])
def test_gradients_finite_everywhere(fn):
    # 0, the sRGB knee (0.04045), the Lab knee region, 1, and a dense sweep.
    special = np.array([0.0, 1e-7, 0.04045, 0.0404, 0.0405, 0.0031308, 0.008856, 0.5, 1.0])
    sweep = np.linspace(0.0, 1.0, 1001)
    values = np.concatenate([special, sweep])
    grid = np.stack(np.meshgrid(values[:60], values[:60], values[:60], indexing="ij"), -1).reshape(-1, 3)
    x = tf.Variable(np.concatenate([grid, np.repeat(values[:, None], 3, 1)]), dtype=tf.float32)
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(fn(x))
    grad = tape.gradient(y, x).numpy()
    assert np.all(np.isfinite(grad))


def test_out_of_gamut_lab_gives_clipped_rgb_without_nan():
    lab = tf.constant([[50.0, 200.0, -200.0], [0.0, 110.0, 110.0], [100.0, -110.0, 110.0], [5.0, 0.0, 120.0]])
    with tf.GradientTape() as tape:
        tape.watch(lab)
        rgb = colour.lab_to_rgb(lab)
    grad = tape.gradient(rgb, lab)
    assert np.all(np.isfinite(rgb.numpy())) and np.all(np.isfinite(grad.numpy()))
    assert rgb.numpy().min() >= 0.0 and rgb.numpy().max() <= 1.0


def test_keep_lightness_preserves_l_where_clipping_does_not():
    lab = tf.constant([[60.0, 100.0, 100.0], [30.0, -100.0, 80.0], [50.0, 0.0, 0.0]])
    kept = colour.rgb_to_lab(colour.lab_to_rgb_keep_lightness(lab)).numpy()
    clipped = colour.rgb_to_lab(colour.lab_to_rgb(lab)).numpy()
    assert np.max(np.abs(kept[:, 0] - lab.numpy()[:, 0])) < 0.05
    assert np.max(np.abs(clipped[:, 0] - lab.numpy()[:, 0])) > 1.0  # plain clipping shifts L
    assert np.allclose(kept[2], [50.0, 0.0, 0.0], atol=1e-3)  # in-gamut colours untouched


def test_works_in_tf_function_with_xla(rng):
    rgb = tf.constant(rng.random((2, 8, 8, 3)), tf.float32)
    compiled = tf.function(lambda x: colour.lab_to_rgb(colour.rgb_to_lab(x)), jit_compile=True)
    assert np.max(np.abs(compiled(rgb).numpy() - rgb.numpy())) < 1e-4


def test_normalisation_is_bbc_scaling_and_inverts(rng):
    lab = tf.constant([[0.0, -110.0, 110.0], [100.0, 0.0, 55.0]])
    n = colour.normalize_lab(lab).numpy()
    np.testing.assert_allclose(n, [[-1.0, -1.0, 1.0], [1.0, 0.0, 0.5]], atol=1e-6)
    np.testing.assert_allclose(colour.denormalize_lab(n).numpy(), lab.numpy(), atol=1e-5)


def test_integer_input_is_rejected_with_clear_error():
    with pytest.raises(TypeError, match="float tensor"):
        colour.rgb_to_lab(tf.constant([[1, 2, 3]], tf.uint8))
    with pytest.raises(ValueError, match="3 channels"):
        colour.rgb_to_lab(tf.zeros([4, 4, 2]))


@pytest.mark.parametrize("chroma", [0.0, 0.3, 0.9])
def test_composition_bisects_only_outside_the_gamut_with_the_same_result(chroma):
    """`colourise._compose` (bisection on the out-of-gamut colours only) against the whole-image conversion."""
    import skimage.data

    from keras_colour.colourise import _compose

    rgb = tf.image.convert_image_dtype(skimage.data.coffee()[:301, :457], tf.float32)  # sizes off the chunk grid
    ab = tf.constant(np.random.default_rng(0).uniform(-chroma, chroma, (40, 40, 2)).astype(np.float32))
    composed = _compose(rgb, ab).numpy()
    lab = tf.concat([colour.rgb_to_lightness(rgb), tf.image.resize(ab[None], rgb.shape[:2])[0] * colour.AB_SCALE], -1)
    whole = colour.to_uint8(colour.lab_to_rgb_keep_lightness(lab))
    outside = 1 - colour.in_gamut(lab).numpy().mean()
    assert (outside == 0) == (chroma == 0) and (chroma < 0.9 or outside > 0.2)
    difference = np.abs(composed.astype(int) - whole.astype(int))
    # Equal but for rounding, and for rare colours on the gamut's edge whose in-or-out test flips with it.
    assert composed.dtype == np.uint8 and composed.shape == whole.shape
    assert (difference > 1).mean() < 1e-4 and (difference > 0).mean() < 1e-3
