"""Running a generator's upsample + conv pairs at low resolution: the same function, fewer FLOPs.

The Gorriz up block is `UpSampling2D(2, nearest) -> Conv2D(f, 4, stride 1, 'same')`. Convolving the
nearest-upsampled image wastes work: each output pixel of parity (r, s) only ever sees 2 or 3 distinct
input pixels per axis, with the 4 taps summed in pairs. So the pair equals one 3x3 convolution at the
*input* resolution whose 4 x C_out output channels are the four output phases, followed by
`depth_to_space(2)`. Its kernel is a fixed linear map of the layer's own 4x4 kernel, computed in the
graph, so gradients reach the same variables. 36 instead of 64 multiply-adds per input pixel and
channel pair (1.8x fewer).

`fast_twin(model)` builds, once, a training twin of a Functional generator with public Keras API only
(`keras.models.clone_model` with a `clone_function`): every layer is shared with the original (so are
its variables), except that each matched UpSampling2D becomes `keras.layers.Identity` and its conv
becomes a `LowResolutionUpConv` that holds the original conv layer. The original model, the one saved
to `generator.keras`, is untouched. Models loaded from files are called as they are (`colourise`'s TensorFlow
engine builds a twin for them too).

The twin also runs every Keras `SpectralNormalization` as `UntapedSpectralNormalization`: the same power
iteration and kernel update, off the gradient tape, which traces a training step about 3x faster and
changes no number (`spectral_update`).
"""

import weakref

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.eager import record  # stop_recording: what GradientTape.stop_recording uses, for every tape

# Which of the 4 kernel taps (columns) reach input offsets -1, 0, +1 (rows) for output phase 0 and 1,
# with TensorFlow's 'same' padding for an even kernel (1 before, 2 after).
_PHASE_TAPS = np.array(
    [
        [[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 1]],  # even output rows: x[m-1] w0 + x[m] (w1 + w2) + x[m+1] w3
        [[0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1]],  # odd output rows: x[m] (w0 + w1) + x[m+1] (w2 + w3)
    ],
    dtype=np.float32,
)

_TWINS = weakref.WeakKeyDictionary()


def phase_kernel(kernel):
    """`[4, 4, C_in, C_out]` -> `[3, 3, C_in, 4 * C_out]`, channels ordered for `depth_to_space(2)`."""
    taps = tf.constant(_PHASE_TAPS, dtype=kernel.dtype)
    k = tf.einsum("ray,sbx,yxio->abirso", taps, taps, kernel)
    shape = tf.shape(kernel)
    return tf.reshape(k, [3, 3, shape[2], 4 * shape[3]])


def _is_fusable_upsample(layer):
    return (
        isinstance(layer, keras.layers.UpSampling2D)
        and tuple(layer.size) == (2, 2)
        and layer.interpolation == "nearest"
        and layer.data_format == "channels_last"
    )


def inner_conv(layer):
    """The Conv2D inside `layer` (itself, or the one a spectral-norm wrapper holds) if it is 4x4/1 'same'."""
    conv = layer.layer if isinstance(layer, keras.layers.Wrapper) else layer
    if (
        type(conv) is keras.layers.Conv2D
        and tuple(conv.kernel_size) == (4, 4)
        and tuple(conv.strides) == (1, 1)
        and tuple(conv.dilation_rate) == (1, 1)
        and conv.padding == "same"
        and conv.groups == 1
        and conv.data_format == "channels_last"
    ):
        return conv
    return None


def _producers(inbound_nodes):
    """Names of the layers whose outputs feed a layer, from its serialised inbound nodes."""
    names = []

    def walk(value):
        if isinstance(value, dict):
            history = (
                value.get("config", {}).get("keras_history") if value.get("class_name") == "__keras_tensor__" else None
            )
            if history:
                names.append(history[0])
            else:
                for v in value.values():
                    walk(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)

    walk(inbound_nodes)
    return names


def fusable_pairs(model):
    """`{upsample layer name: conv layer name}` for every UpSampling2D whose only consumer is a fusable conv.

    Read from the model's public config (`get_config()["layers"][i]["inbound_nodes"]`).
    """
    config = model.get_config()
    consumers = {}
    for entry in config.get("layers", []):
        for producer in _producers(entry.get("inbound_nodes", [])):
            consumers.setdefault(producer, []).append(entry["name"])
    pairs = {}
    for layer in model.layers:
        users = consumers.get(layer.name, [])
        if _is_fusable_upsample(layer) and len(users) == 1 and inner_conv(model.get_layer(users[0])) is not None:
            pairs[layer.name] = users[0]
    return pairs


class LowResolutionUpConv(keras.layers.Layer):
    """`UpSampling2D(2, nearest)` then a 4x4 'same' conv, run as a 3x3 conv at low resolution.

    Holds the original conv layer (a `Conv2D`, a `SpectralNormalization` around one, or any layer with a
    `normalized_kernel(training)` method) and uses its variables, so it trains them.

    Args:
        conv_layer: the layer that followed the upsample.
    """

    def __init__(self, conv_layer, **kwargs):
        super().__init__(name=f"{conv_layer.name}_lowres", dtype=conv_layer.dtype_policy, **kwargs)
        self.conv_layer = conv_layer
        self.conv = inner_conv(conv_layer) or conv_layer

    def _kernel(self, training):
        layer = self.conv_layer
        if hasattr(layer, "normalized_kernel"):
            return layer.normalized_kernel(training)
        if isinstance(layer, keras.layers.SpectralNormalization) and training:
            spectral_update(layer)
        return self.conv.kernel

    def call(self, x, training=None):
        dtype = self.conv.compute_dtype
        x = tf.cast(x, dtype)
        # The taps are summed in the variable's dtype (float32 under a mixed policy), then cast once.
        y = tf.nn.conv2d(x, tf.cast(phase_kernel(self._kernel(training)), dtype), strides=1, padding="SAME")
        y = tf.nn.depth_to_space(y, 2)
        if self.conv.use_bias:
            y = y + tf.cast(self.conv.bias, dtype)
        return self.conv.activation(y) if self.conv.activation is not None else y

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        double = [None if d is None else 2 * d for d in (height, width)]
        return (batch, *double, self.conv.filters)


def spectral_update(wrapper):
    """What Keras's `SpectralNormalization` does on a training call, off every gradient tape.

    One power iteration, stored into `vector_u` and the kernel (`keras.layers.SpectralNormalization.call`, the
    same ops). The stored kernel is what the convolution then reads, and the gradient is taken with respect to
    that variable: nothing flows through the update itself. On a tape, though, TensorFlow records its `cond` and
    builds the branches' gradient functions while tracing, about half a second per layer on a 2-core CPU (20 s
    for the quick start's networks at every start of training) for gradients no one asks for.
    """
    with record.stop_recording():
        new_u, new_kernel = keras.ops.cond(
            keras.ops.all(keras.ops.equal(wrapper.kernel.value, 0)),
            lambda: (wrapper.vector_u.value, wrapper.kernel.value),
            wrapper.normalized_weights,
        )
        wrapper.vector_u.assign(new_u)
        wrapper.kernel.assign(new_kernel)


class UntapedSpectralNormalization(keras.layers.Layer):
    """A Keras `SpectralNormalization` wrapper's call with its update kept off the gradient tape.

    Holds the wrapper (and so shares its variables); used in training twins only, never saved.
    """

    def __init__(self, wrapper, **kwargs):
        super().__init__(name=f"{wrapper.name}_untaped", dtype=wrapper.dtype_policy, **kwargs)
        self.wrapper = wrapper

    def call(self, inputs, training=False):
        if training:
            spectral_update(self.wrapper)
        return keras.ops.cast(self.wrapper.layer(inputs), inputs.dtype)

    def compute_output_shape(self, input_shape):
        return self.wrapper.compute_output_shape(input_shape)


def fast_twin(model, fuse_upsampling=True):
    """A model computing `model`'s function faster in training, built once per model and setting.

    Every fusable pair runs at low resolution (with `fuse_upsampling`), and every Keras `SpectralNormalization`
    updates off the gradient tape (`spectral_update`). Shares every variable with `model`. Returns `model`
    itself when there is nothing to change.
    """
    twins = _TWINS.setdefault(model, {})
    if fuse_upsampling in twins:
        return twins[fuse_upsampling]
    pairs = fusable_pairs(model) if fuse_upsampling else {}
    convs = set(pairs.values())
    wrappers = [layer for layer in model.layers if type(layer) is keras.layers.SpectralNormalization]
    if not pairs and not wrappers:
        twins[fuse_upsampling] = model
        return model

    def clone_function(layer):
        if layer.name in pairs:
            return keras.layers.Identity(name=f"{layer.name}_skipped", dtype=layer.dtype_policy)
        if layer.name in convs:
            return LowResolutionUpConv(layer)
        if type(layer) is keras.layers.SpectralNormalization:
            return UntapedSpectralNormalization(layer)
        return layer

    twin = keras.models.clone_model(model, clone_function=clone_function)
    twins[fuse_upsampling] = twin
    return twin
