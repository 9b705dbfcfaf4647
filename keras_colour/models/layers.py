"""The two layers that mirror the BBC code exactly where Keras's built-in layers differ.

Both are used only while training a `bbc`-mode network; `keras_colour.models.export.plain_generator`
folds them into built-in layers for the saved `generator.keras`, so loading it needs only Keras.
"""

import keras
from keras import ops


def _l2_normalize(v, epsilon=1e-12):
    # The BBC layer divides by (norm + eps), not max(norm, eps).
    return v / (ops.sqrt(ops.sum(ops.square(v))) + epsilon)


@keras.saving.register_keras_serializable(package="keras_colour")
class BBCSpectralNormalization(keras.layers.Wrapper):
    """Spectral normalisation of a conv layer's kernel as the BBC code's `ConvSN2D` computes it.

    On every call (training or not, as Keras 2 ran the BBC layer with `training=None`): one power
    iteration from the stored `u` (`v = l2n(u W^T)`, `u' = l2n(v W)`), `sigma = v W u'^T`, the
    convolution with `W / sigma`, and `u` set to `u'`. Gradients flow through sigma, u' and v (no stop
    gradient). The raw kernel `W` is the variable that trains; it is never overwritten (Keras's
    `SpectralNormalization` instead writes `W / sigma` back into the kernel and stops gradients
    through u and v).

    Args:
        layer: a `keras.layers.Conv2D` (or `Conv2DTranspose`) to normalise.

    Reference:
        bbc/ColorGAN `models/layers/spectralnormalization.py` (`ConvSN2D.call`); Miyato et al. 2018.
    """

    def build(self, input_shape=None):
        super().build(input_shape)
        kernel = self.layer.kernel
        self.vector_u = self.add_weight(
            shape=(1, kernel.shape[-1]),
            initializer=keras.initializers.RandomNormal(0.0, 1.0),
            trainable=False,
            name="vector_u",
            dtype=self.variable_dtype,
        )

    def normalized_kernel(self, training=None):
        """`W / sigma` after one power iteration, storing the new `u` (as every BBC call did)."""
        kernel = self.layer.kernel
        w = ops.reshape(kernel, (-1, kernel.shape[-1]))
        u = ops.cast(self.vector_u, w.dtype)
        v = _l2_normalize(ops.matmul(u, ops.transpose(w)))
        new_u = _l2_normalize(ops.matmul(v, w))
        sigma = ops.matmul(ops.matmul(v, w), ops.transpose(new_u))
        self.vector_u.assign(ops.cast(new_u, self.vector_u.dtype))
        return ops.reshape(w / sigma, kernel.shape)

    def folded_kernel(self):
        """What `normalized_kernel` would use on the next call, without storing u: for the export."""
        kernel = self.layer.kernel
        w = ops.reshape(kernel, (-1, kernel.shape[-1]))
        v = _l2_normalize(ops.matmul(ops.cast(self.vector_u, w.dtype), ops.transpose(w)))
        new_u = _l2_normalize(ops.matmul(v, w))
        sigma = ops.matmul(ops.matmul(v, w), ops.transpose(new_u))
        return ops.reshape(w / sigma, kernel.shape)

    def call(self, inputs, training=None):
        conv = self.layer
        kernel = ops.cast(self.normalized_kernel(training), conv.compute_dtype)
        outputs = conv.convolution_op(ops.cast(inputs, conv.compute_dtype), kernel)
        if conv.use_bias:
            outputs = outputs + ops.cast(conv.bias, conv.compute_dtype)
        return conv.activation(outputs) if conv.activation is not None else outputs

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)


@keras.saving.register_keras_serializable(package="keras_colour")
class SampleInstanceNormalization(keras.layers.Layer):
    """keras-contrib's `InstanceNormalization(axis=None)`, the BBC code's IN: one sample at a time.

    Normalises each sample over height, width and channels together,
    `(x - mean) / (std + epsilon) * gamma + beta`, with one scalar `gamma` and one scalar `beta`
    (population std; `GroupNormalization(groups=1)` instead divides by `sqrt(var + epsilon)` and has
    per-channel gamma and beta).

    Args:
        epsilon: float. Added to the standard deviation. Defaults to 1e-3 (keras-contrib's default).

    Reference:
        keras-contrib `layers/normalization/instancenormalization.py`, as imported by bbc/ColorGAN
        `models/layers/instancenormalization.py`.
    """

    def __init__(self, epsilon=1e-3, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape):
        self.gamma = self.add_weight(shape=(1,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(1,), initializer="zeros", name="beta")

    def call(self, inputs):
        axes = tuple(range(1, len(inputs.shape)))
        mean = ops.mean(inputs, axis=axes, keepdims=True)
        std = ops.sqrt(ops.mean(ops.square(inputs - mean), axis=axes, keepdims=True))
        normed = (inputs - mean) / (std + self.epsilon)
        return normed * ops.cast(self.gamma, inputs.dtype) + ops.cast(self.beta, inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}
