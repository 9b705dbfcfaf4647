"""A generator for inference and sharing: built-in Keras layers only, spectral norm folded in.

`plain_generator(model)` returns a model with the same inference-mode function where every
`BBCSpectralNormalization` and Keras `SpectralNormalization` wrapper becomes a plain `Conv2D` whose
kernel is the normalised one (faster, and loadable with `keras.models.load_model` alone), and every
`SampleInstanceNormalization` becomes `GroupNormalization(groups=1)` (see `GROUP_NORM_EPSILON` for how
close that is), and every `BBCBatchNormalization` a plain `BatchNormalization` holding its (debiased)
moving statistics, which is exact. Other layers are shared with the original.
"""

import keras
import numpy as np

from keras_colour.models.layers import BBCBatchNormalization, BBCSpectralNormalization, SampleInstanceNormalization

# GroupNormalization divides by sqrt(var + eps); the BBC layer by (std + 1e-3). With eps = 1e-6 the two
# agree to a relative 1e-3 / std: 1e-4 wherever a feature map's standard deviation is above 10.
GROUP_NORM_EPSILON = 1e-6


def _plain_conv(wrapper):
    config = wrapper.layer.get_config()
    config["name"] = wrapper.name
    return wrapper.layer.__class__.from_config(config)


def _replacement(layer):
    if isinstance(layer, (BBCSpectralNormalization, keras.layers.SpectralNormalization)):
        return _plain_conv(layer)
    if isinstance(layer, BBCBatchNormalization):
        return keras.layers.BatchNormalization.from_config(layer.get_config())
    if isinstance(layer, SampleInstanceNormalization):
        return keras.layers.GroupNormalization(
            groups=1, epsilon=GROUP_NORM_EPSILON, name=layer.name, dtype=layer.dtype_policy
        )
    return None


def _folded_weights(layer):
    if isinstance(layer, BBCSpectralNormalization):
        kernel = keras.ops.convert_to_numpy(layer.folded_kernel())
        return [kernel] + ([layer.layer.bias.numpy()] if layer.layer.use_bias else [])
    if isinstance(layer, keras.layers.SpectralNormalization):
        # In inference Keras's wrapper convolves with the kernel its last training call stored.
        return [w.numpy() for w in layer.layer.weights]
    if isinstance(layer, BBCBatchNormalization):
        return [w.numpy() for w in (layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance)]
    channels = layer.input.shape[-1]
    return [np.full((channels,), layer.gamma.numpy()[0]), np.full((channels,), layer.beta.numpy()[0])]


def needs_folding(model):
    """True if `model` holds a layer that `plain_generator` replaces (spectral norm, BBC instance or batch norm)."""
    return any(_replacement(layer) is not None for layer in model.layers)


def plain_generator(model):
    """`model` with built-in layers only (the original is returned when it already has only those)."""
    if not needs_folding(model):
        return model
    replaced = {}

    def clone_function(layer):
        new = _replacement(layer)
        if new is None:
            return layer
        replaced[layer.name] = (layer, new)
        return new

    plain = keras.models.clone_model(model, clone_function=clone_function)
    for source, new in replaced.values():
        new.set_weights(_folded_weights(source))
    return plain


def _float32_layer(layer):
    config = layer.get_config()
    if "dtype" in config:
        config["dtype"] = "float32"
    return layer.__class__.from_config(config)


def inference_generator(model, input_shape=None):
    """A float32 copy of a colouriser for serving: built-in layers only, spectral norm folded, ab output only.

    Args:
        model: a generator (`generator.keras` of a run, whatever its training dtype policy).
        input_shape: `(height, width)` for a fixed spatial size, `(None, None)` for any size; `None` keeps the
            model's own. The batch dimension stays free.

    Returns:
        A functional `keras.Model` from L_n `(B, H, W, 1)` to ab_n `(B, H, W, 2)` computing in float32 (a
        generator trained under `mixed_float16` or `mixed_bfloat16` is rebuilt in float32 with its weights).
    """
    plain = plain_generator(model)
    if isinstance(plain.output, dict):
        plain = keras.Model(plain.input, plain.output["ab"], name=plain.name)
    height, width = input_shape if input_shape is not None else plain.input_shape[1:3]
    inputs = keras.Input((height, width, 1), name=plain.inputs[0].name.split(":")[0])
    rebuilt = keras.models.clone_model(plain, input_tensors=inputs, clone_function=_float32_layer)
    rebuilt.set_weights([np.asarray(w, dtype=np.float32) for w in plain.get_weights()])
    return rebuilt
