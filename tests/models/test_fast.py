"""The low-resolution upsample + conv path computes the same function, values and gradients."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_colour.models import build_generator
from keras_colour.models.fast import fast_twin, fusable_pairs, phase_kernel

SMALL = dict(image_size=64, base_filters=8, num_downsamples=5)


@pytest.mark.parametrize("height, width", [(6, 6), (5, 7), (1, 1)])
def test_phase_conv_equals_upsample_then_conv(height, width):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(2, height, width, 3)), tf.float32)
    kernel = tf.constant(rng.normal(size=(4, 4, 3, 5)), tf.float32)
    reference = tf.nn.conv2d(keras.layers.UpSampling2D(2)(x), kernel, 1, "SAME")
    fused = tf.nn.depth_to_space(tf.nn.conv2d(x, phase_kernel(kernel), 1, "SAME"), 2)
    np.testing.assert_allclose(fused.numpy(), reference.numpy(), atol=1e-5)


def _grads(fn, model, x):
    with tf.GradientTape() as tape:
        out = tf.nest.flatten(fn(x))
        loss = tf.add_n([tf.reduce_sum(tf.square(tf.cast(o, tf.float32))) for o in out])
    return out, tape.gradient(loss, model.trainable_variables)


@pytest.mark.parametrize(
    "options",
    [
        dict(norm="bn"),
        dict(norm="ibn", spectral_norm=True),
        dict(segmentation="separate_decoders", n_classes=4),
        dict(segmentation="shared_decoder", n_classes=3, norm="in"),
    ],  # fmt: skip
    ids=["bn", "ibn_sn", "separate", "shared_in"],
)
def test_generator_values_and_gradients_match_keras(options):
    # float64, so that the comparison shows the two paths compute the same function and gradients
    # (in float32, batch norm over a 2x2 bottleneck amplifies summation-order noise).
    keras.utils.set_random_seed(0)
    keras.config.set_dtype_policy("float64")
    try:
        model = build_generator("gorriz", **SMALL, **options)
    finally:
        keras.config.set_dtype_policy("float32")
    assert len(fusable_pairs(model)) == (10 if options.get("segmentation") == "separate_decoders" else 5)
    x = tf.random.stateless_uniform([2, 64, 64, 1], [1, 2], -1, 1, dtype=tf.float64)
    for training in (False, True):
        u_before = [v.numpy() for v in model.non_trainable_variables if "vector_u" in v.path]
        ref_out, ref_grads = _grads(lambda t, training=training: model(t, training=training), model, x)
        u_after_ref = [v.numpy() for v in model.non_trainable_variables if "vector_u" in v.path]
        for v, u in zip([v for v in model.non_trainable_variables if "vector_u" in v.path], u_before):
            v.assign(u)  # spectral norm updates u on each training call: replay from the same state
        out, grads = _grads(lambda t, training=training: fast_twin(model)(t, training=training), model, x)
        for a, b in zip(ref_out, out):
            np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-9, atol=1e-9)
        scale = max(float(tf.reduce_max(tf.abs(g))) for g in ref_grads)
        for a, b in zip(ref_grads, grads):
            np.testing.assert_allclose(b.numpy(), a.numpy(), atol=1e-9 * scale)
        u_after_fast = [v.numpy() for v in model.non_trainable_variables if "vector_u" in v.path]
        for a, b in zip(u_after_ref, u_after_fast):
            np.testing.assert_allclose(b, a, atol=1e-12)


def test_untaped_spectral_norm_discriminator_matches_keras_values_gradients_and_updates():
    """The training twin's spectral norm (update off the tape) against Keras's own wrapper, in float64."""
    from keras_colour.models import build_discriminator

    keras.utils.set_random_seed(1)
    keras.config.set_dtype_policy("float64")
    try:
        model = build_discriminator("multiscale", 32, scales=3, spectral_norm=True, base_filters=8)
    finally:
        keras.config.set_dtype_policy("float32")
    twin = fast_twin(model, fuse_upsampling=False)
    assert twin is not model and all(
        type(layer).__name__ == "UntapedSpectralNormalization"
        for layer in twin.layers
        if "conv" in layer.name and type(layer).__name__ != "BatchNormalization"
    )
    x = [tf.random.stateless_uniform([2, 32, 32, c], [c, 3], -1, 1, dtype=tf.float64) for c in (1, 2)]
    state = [v.numpy() for v in model.variables]
    for training in (False, True, True):  # two training calls: the second starts from the first's u and kernel
        start = [v.numpy() for v in model.variables]
        ref_out, ref_grads = _grads(lambda t, training=training: model(t, training=training), model, x)
        ref_state = [v.numpy() for v in model.variables]
        for v, value in zip(model.variables, start):
            v.assign(value)
        out, grads = _grads(lambda t, training=training: twin(t, training=training), model, x)
        for a, b in zip(ref_out, out):
            np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-12, atol=1e-12)
        for a, b in zip(ref_grads, grads):
            np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-12, atol=1e-12)
        for a, v in zip(ref_state, model.variables):  # u and the normalised kernel: the same update
            np.testing.assert_allclose(v.numpy(), a, rtol=1e-12, atol=1e-12)
    assert any(not np.array_equal(a, v.numpy()) for a, v in zip(state, model.variables))  # they did update


def test_models_without_pairs_run_unchanged():
    model = build_generator("pix2pix", **SMALL)  # transposed convolutions: nothing to fuse
    assert fusable_pairs(model) == {}
    assert fast_twin(model) is model


def test_float32_values_agree():
    model = build_generator("gorriz", norm="ibn", spectral_norm=True, **SMALL)
    x = tf.random.uniform([2, 64, 64, 1], -1, 1)
    np.testing.assert_allclose(fast_twin(model)(x).numpy(), model(x).numpy(), atol=2e-5)


def test_mixed_precision_and_xla():
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = build_generator("gorriz", **SMALL)
    finally:
        keras.config.set_dtype_policy("float32")
    x = tf.random.uniform([2, 64, 64, 1], -1, 1)
    compiled = tf.function(lambda t: fast_twin(model)(t, training=False), jit_compile=True)
    out = compiled(x)
    assert out.dtype == model(x).dtype
    np.testing.assert_allclose(tf.cast(out, tf.float32).numpy(), tf.cast(model(x), tf.float32).numpy(), atol=0.05)


def test_twin_shares_variables_and_leaves_the_saved_model_plain(tmp_path):
    model = build_generator("gorriz", norm="ibn", spectral_norm=True, **SMALL)
    twin = fast_twin(model)
    assert fast_twin(model) is twin  # built once
    assert [id(v) for v in twin.trainable_variables] == [id(v) for v in model.trainable_variables]
    kinds = {type(layer).__name__ for layer in twin.layers}
    assert "LowResolutionUpConv" in kinds and "UpSampling2D" not in kinds
    assert "UpSampling2D" in {type(layer).__name__ for layer in model.layers}
    model.save(tmp_path / "g.keras")
    reloaded = keras.models.load_model(tmp_path / "g.keras")
    x = tf.random.uniform([1, 64, 64, 1], -1, 1)
    np.testing.assert_allclose(reloaded(x).numpy(), twin(x).numpy(), atol=2e-5)
