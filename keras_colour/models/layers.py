"""The layers that mirror the BBC code exactly where Keras's built-in layers differ.

They are used only while training a `bbc`-mode network; `keras_colour.models.export.plain_generator`
folds them into built-in layers for the saved `generator.keras`, so loading it needs only Keras.
"""

import logging

import keras
from keras import ops

logger = logging.getLogger(__name__)


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


@keras.saving.register_keras_serializable(package="keras_colour")
class BBCBatchNormalization(keras.layers.BatchNormalization):
    """Keras 2.2.4's `BatchNormalization` as the BBC code trained it: zero-debiased moving statistics.

    The normalisation is Keras's (batch statistics in training, moving statistics in inference, the
    same epsilon); only the update of the moving statistics differs, in two ways, both from the
    libraries the BBC code pinned (Keras 2.2.4 on TensorFlow 1.13.1):

    * the variance fed to the moving average is the fused op's unbiased batch variance, `n / (n - 1)`
      times the biased one, multiplied again by `n / (n - (1 + epsilon))` (Keras 2.2.4
      `layers/normalization.py:186-193`), with `n = batch x height x width`;
    * the moving averages are zero-debiased (`K.moving_average_update` ->
      `tf.train.assign_moving_average(..., zero_debias=True)`, `backend/tensorflow_backend.py:1013`):
      a hidden average `biased <- biased - (biased - value) (1 - momentum)`, started at 0, and a step
      count `t`; the moving statistic becomes `biased / (1 - momentum^t)`. After the first step it is
      that batch's statistic instead of 1% of the way from 0 or 1.

    `moving_mean` and `moving_variance` always hold the debiased values, so a plain
    `keras.layers.BatchNormalization` with the same four weights computes the same inference output
    (`keras_colour.models.export.plain_generator` does exactly that).

    Args:
        **kwargs: as `keras.layers.BatchNormalization` (`momentum` 0.99 and `epsilon` 1e-3 are
            Keras 2.2.4's defaults too). `renorm` and `synchronized` are not supported.

    Reference:
        Keras 2.2.4 `keras/layers/normalization.py` (`BatchNormalization.call`); TensorFlow 1.13
        `python/training/moving_averages.py` (`assign_moving_average`, `_zero_debias`).
    """

    def __init__(self, **kwargs):
        if kwargs.get("renorm") or kwargs.get("synchronized"):
            raise ValueError("BBCBatchNormalization supports neither `renorm` nor `synchronized`.")
        super().__init__(**kwargs)

    def build(self, input_shape):
        super().build(input_shape)
        shape = self.moving_mean.shape
        self.biased_mean = self.add_weight(shape=shape, initializer="zeros", trainable=False, name="biased_mean")
        self.biased_variance = self.add_weight(
            shape=shape, initializer="zeros", trainable=False, name="biased_variance"
        )
        self.local_step = self.add_weight(shape=(), initializer="zeros", trainable=False, name="local_step")

    def _debiased_update(self, moving, biased, value, step):
        # moving_averages.py: decay = 1 - momentum (in Python doubles, then float32), as TF 1.13 computes it.
        decay = ops.convert_to_tensor(1.0 - self.momentum, dtype="float32")
        new_biased = biased - (biased - value) * decay
        biased.assign(new_biased)
        unbiased_delta = moving - new_biased / (1.0 - ops.power(1.0 - decay, step))
        moving.assign(moving - unbiased_delta)

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or mask is not None:
            return super().call(inputs, training=training, mask=mask)
        x = ops.cast(inputs, "float32")
        axes = [i for i in range(len(x.shape)) if i != self.axis % len(x.shape)]
        mean, variance = ops.moments(x, axes=axes)  # biased: what the fused op normalises with
        n = ops.cast(ops.prod(ops.convert_to_tensor([ops.shape(x)[i] for i in axes])), "float32")
        unbiased = variance * n / (n - 1.0)  # the fused op's batch_variance output
        keras2_variance = unbiased * (n / (n - (1.0 + self.epsilon)))
        step = self.local_step + 1.0
        self.local_step.assign(step)
        self._debiased_update(self.moving_mean, self.biased_mean, mean, step)
        self._debiased_update(self.moving_variance, self.biased_variance, keras2_variance, step)
        outputs = ops.batch_normalization(
            x,
            mean,
            variance,
            axis=self.axis,
            offset=ops.cast(self.beta, "float32") if self.center else None,
            scale=ops.cast(self.gamma, "float32") if self.scale else None,
            epsilon=self.epsilon,
        )
        return ops.cast(outputs, self.compute_dtype)


def with_bbc_batch_norm(model):
    """`model` with every `keras.layers.BatchNormalization` replaced by a `BBCBatchNormalization`.

    Every other layer is shared with `model` (its variables included); the new layers keep the names,
    the configuration and the four weights of the ones they replace. Works for any Functional model, so
    a generator or discriminator registered outside this package gets the BBC statistics too.
    """
    replaced = []

    def clone_function(layer):
        if type(layer) is not keras.layers.BatchNormalization:
            return layer
        config = layer.get_config()
        if config.pop("synchronized", False):
            logger.warning(
                "model.batch_norm: bbc takes batch statistics per replica (as Keras 2.2.4's multi_gpu_model did), "
                "not over the global batch as model.batch_norm: keras does under a distribution strategy"
            )
        new = BBCBatchNormalization.from_config(config)
        replaced.append((layer, new))
        return new

    if not any(type(layer) is keras.layers.BatchNormalization for layer in model.layers):
        return model
    clone = keras.models.clone_model(model, clone_function=clone_function)
    for old, new in replaced:
        new.gamma.assign(old.gamma)
        new.beta.assign(old.beta)
        new.moving_mean.assign(old.moving_mean)
        new.moving_variance.assign(old.moving_variance)
    return clone
