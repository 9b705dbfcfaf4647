"""The BBC training loop as bbc/ColorGAN ran it on Keras 2.2.4 / TensorFlow 1.13.1, in plain TensorFlow ops.

A reference for `tests/test_fidelity.py`, written from the BBC code and from the sources of the libraries its
`requeriments.txt` pinned, never from keras_colour and never with a Keras 3 layer or optimiser standing in:

* bbc/ColorGAN `models/models.py` (`down_block`, `up_block`, `BNModel`, `IBNModel`, `default_disc`),
  `models/layers/spectralnormalization.py` (`ConvSN2D.call`), keras-contrib's `InstanceNormalization(axis=None)`,
  `models/colorgan.py` (one `Adam` object for every discriminator, `combined` with every discriminator among its
  outputs) and `models/train.py` (`combined.predict`, then `train_on_batch(real, 1)` and `(fake, 0)` per scale,
  then `combined.train_on_batch`).
* Keras 2.2.4 `keras/optimizers.py:474-504` (`Adam.get_updates`: `t = iterations + 1`,
  `lr_t = lr sqrt(1 - beta_2^t) / (1 - beta_1^t)`, `m_t = beta_1 m + (1 - beta_1) g`,
  `p - lr_t m_t / (sqrt(v_t) + 1e-7)`;
  `iterations` belongs to the optimiser object, the moments to each compiled model),
  `keras/layers/normalization.py:183-203` (training: fused batch norm; the moving variance is fed the batch variance
  times `n / (n - (1 + epsilon))`), `keras/backend/tensorflow_backend.py:1002-1014` (`moving_average_update` ->
  `assign_moving_average(..., zero_debias=True)`), `keras/engine/network.py:361-386` with
  `keras/engine/training.py:500-512` (a model's updates are collected when its train function is first made; the
  discriminators are trainable again by then, `models/colorgan.py:80-82`, so `combined.train_on_batch` also updates
  their BatchNorm statistics).
* TensorFlow 1.13.1 `python/training/moving_averages.py:83-90, 234-246` (`decay = 1 - momentum`,
  `biased -= (biased - value) decay`, `local_step += 1`, `var -= var - biased / (1 - (1 - decay)^local_step)`) and
  `FusedBatchNorm`'s training output `batch_var`, the biased variance times `n / (n - 1)`.

The state is a dict of `tf.Variable`s named `LAYER/kernel`, `LAYER/bias`, `LAYER/u`, `LAYER/gamma`, `LAYER/beta`,
`LAYER/moving_mean`, `LAYER/moving_variance`, and the hidden `LAYER/moving_mean/biased`,
`LAYER/moving_mean/local_step` (likewise for the variance) that TensorFlow 1 created beside each moving statistic.
"""

import numpy as np
import tensorflow as tf

KERAS2_EPSILON = 1e-7  # keras/backend/common.py:9
BN_EPSILON, BN_MOMENTUM = 1e-3, 0.99  # keras/layers/normalization.py defaults
IN_EPSILON = 1e-3  # keras-contrib InstanceNormalization default


# -- layers ---------------------------------------------------------------------------------------------------


def _l2normalize(v, eps=1e-12):
    return v / (tf.reduce_sum(v**2) ** 0.5 + eps)


def conv(state, name, x, filters_stride, spectral_norm, activation=None):
    """keras Conv2D(k, 4, padding='same') or BBC ConvSN2D (one power iteration, `u` assigned on every call)."""
    kernel = state[f"{name}/kernel"]
    if spectral_norm:
        shape = kernel.shape
        w = tf.reshape(kernel, [-1, shape[-1]])
        u = state[f"{name}/u"]
        v = _l2normalize(tf.matmul(u, tf.transpose(w)))
        new_u = _l2normalize(tf.matmul(v, w))
        sigma = tf.matmul(tf.matmul(v, w), tf.transpose(new_u))
        kernel = tf.reshape(w / sigma, shape)
        u.assign(new_u)
    y = tf.nn.conv2d(x, kernel, filters_stride, "SAME") + state[f"{name}/bias"]
    return tf.tanh(y) if activation == "tanh" else y


def _zero_debiased_update(state, name, value):
    """tf.train.assign_moving_average(variable, value, 0.99, zero_debias=True) of TensorFlow 1.13."""
    variable, biased, step = state[name], state[f"{name}/biased"], state[f"{name}/local_step"]
    decay = tf.constant(1.0 - BN_MOMENTUM, tf.float32)
    biased.assign_sub((biased - value) * decay)
    step.assign_add(1.0)
    delta = variable - biased / (1 - tf.pow(1.0 - decay, step))
    variable.assign_sub(delta)


def batch_norm(state, name, x, training):
    """Keras 2.2.4 BatchNormalization: fused batch statistics in training (and the moving-average updates)."""
    gamma, beta = state[f"{name}/gamma"], state[f"{name}/beta"]
    if not training:
        mean, var = state[f"{name}/moving_mean"], state[f"{name}/moving_variance"]
        return (x - mean) / tf.sqrt(var + BN_EPSILON) * gamma + beta
    mean, var = tf.nn.moments(x, axes=[0, 1, 2])
    n = float(np.prod(x.shape[:3]))
    fused_batch_var = var * n / (n - 1.0)
    _zero_debiased_update(state, f"{name}/moving_mean", mean)
    _zero_debiased_update(state, f"{name}/moving_variance", fused_batch_var * (n / (n - (1.0 + BN_EPSILON))))
    return (x - mean) / tf.sqrt(var + BN_EPSILON) * gamma + beta


def instance_norm(state, name, x):
    """keras-contrib InstanceNormalization(axis=None): one sample over H, W and C, scalar gamma and beta."""
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    std = tf.sqrt(tf.reduce_mean(tf.square(x - mean), axis=[1, 2, 3], keepdims=True))
    return (x - mean) / (std + IN_EPSILON) * state[f"{name}/gamma"] + state[f"{name}/beta"]


def norm_layer(state, name, kind, x, training):
    if kind == "bn":
        return batch_norm(state, f"{name}_bn", x, training)
    if kind == "in":
        return instance_norm(state, f"{name}_in", x)
    return x


def upsample(x):
    return tf.repeat(tf.repeat(x, 2, axis=1), 2, axis=2)  # UpSampling2D(2), nearest


# -- networks (models/models.py) --------------------------------------------------------------------------------


def generator(state, spec, lightness, training):
    """BNModel / IBNModel.generator with `spec["depth"]` down blocks (their widths are the kernels' own)."""
    depth, sn = spec["depth"], spec["spectral_norm"]
    x, skips = lightness, []
    for i in range(depth):
        name = f"gorriz_down{i + 1}"
        x = conv(state, f"{name}_conv", x, 2, sn)
        x = norm_layer(state, name, "none" if i == 0 else "bn", x, training)
        x = tf.nn.leaky_relu(x, 0.2)
        skips.append(x)
    for j in range(depth - 1):
        name, k = f"gorriz_up{j + 1}", depth - 2 - j
        x = conv(state, f"{name}_conv", upsample(x), 1, sn)
        last = j == depth - 2
        x = norm_layer(state, name, "in" if (spec["norm"] == "ibn" and last) else "bn", x, training)
        x = tf.concat([tf.nn.relu(x), skips[k]], axis=-1)
    return conv(state, "gorriz_ab", upsample(x), 1, sn, activation="tanh")


def discriminator(state, spec, scale, lightness, ab, training):
    """`_core_model` of scale `scale` (0-based): the input average-pooled `scale` times, 4 down blocks, conv(1)."""
    sn = spec["spectral_norm"]
    norms = ["none", "in", "bn", "bn"] if spec["norm"] == "ibn" else ["none", "bn", "bn", "bn"]
    x = tf.concat([lightness, ab], axis=-1)
    for _ in range(scale):
        x = tf.nn.avg_pool2d(x, 2, 2, "SAME")
    for i, kind in enumerate(norms):
        name = f"multiscale_s{scale + 1}_down{i + 1}"
        x = conv(state, f"{name}_conv", x, 2, sn)
        x = tf.nn.leaky_relu(norm_layer(state, name, kind, x, training), 0.2)
    return conv(state, f"multiscale_s{scale + 1}_logits", x, 1, sn)


# -- Keras 2.2.4 Adam -------------------------------------------------------------------------------------------


class Keras224Adam:
    """`keras.optimizers.Adam` of Keras 2.2.4: one `iterations` per optimiser object, moments per compiled model."""

    def __init__(self, lr, beta_1, beta_2=0.999, epsilon=KERAS2_EPSILON):
        self.lr, self.beta_1, self.beta_2, self.epsilon = lr, beta_1, beta_2, epsilon
        self.iterations = 0

    @staticmethod
    def slots(params):
        return [(tf.Variable(tf.zeros_like(p)), tf.Variable(tf.zeros_like(p))) for p in params]

    def train_on_batch(self, loss_fn, params, slots):
        """One `train_on_batch`: the loss (and the forward pass's updates), then the Adam step. Returns the loss."""
        with tf.GradientTape() as tape:
            loss = loss_fn()
        grads = tape.gradient(loss, params)
        t = tf.cast(self.iterations, tf.float32) + 1
        lr_t = self.lr * (tf.sqrt(1.0 - tf.pow(self.beta_2, t)) / (1.0 - tf.pow(self.beta_1, t)))
        for p, g, (m, v) in zip(params, grads, slots):
            m_t = (self.beta_1 * m) + (1.0 - self.beta_1) * g
            v_t = (self.beta_2 * v) + (1.0 - self.beta_2) * tf.square(g)
            p.assign(p - lr_t * m_t / (tf.sqrt(v_t) + self.epsilon))
            m.assign(m_t)
            v.assign(v_t)
        self.iterations += 1
        return float(loss)


# -- the loop (models/train.py) ---------------------------------------------------------------------------------


def trainable(state, prefix):
    """The trainable variables of one network: kernels, biases, gammas and betas (never `u` or statistics)."""
    ends = ("/kernel", "/bias", "/gamma", "/beta")
    return [v for k, v in sorted(state.items()) if k.startswith(prefix) and k.endswith(ends)]


class BBCLoop:
    """`train_gan`'s inner loop (models/train.py), one batch of `(L_n, ab_n)` per `step`.

    `step` returns that batch's losses: `d_loss_s{i}` (0.5 (real + fake), as train.py logs), `g_adversarial`
    (the sum of the per-scale `mse` terms of `combined`) and `g_colour` (`l1_lambda x mae`).
    """

    def __init__(self, state, spec, lr_g=2e-4, lr_d=2e-4, beta_1=0.5, l1_lambda=100.0):
        self.state, self.spec, self.l1_lambda = state, spec, l1_lambda
        # models/colorgan.py: one Adam for every discriminator, one for `combined`
        self.optimizer_d, self.optimizer_g = Keras224Adam(lr_d, beta_1), Keras224Adam(lr_g, beta_1)
        self.d_params = [trainable(state, f"multiscale_s{s + 1}_") for s in range(spec["scales"])]
        self.d_slots = [self.optimizer_d.slots(p) for p in self.d_params]  # moments per compiled model
        self.g_params = trainable(state, "gorriz_")
        self.g_slots = self.optimizer_g.slots(self.g_params)

    def step(self, lightness, ab):
        state, spec, scales = self.state, self.spec, range(self.spec["scales"])
        # batch_fake = gan.combined.predict(batch_gray)[-1]: every output of `combined`, in inference mode
        fake = generator(state, spec, lightness, training=False)
        for s in scales:
            discriminator(state, spec, s, lightness, fake, training=False)
        row = {}
        for s in scales:

            def mse(chroma, target, s=s):
                return tf.reduce_mean(tf.square(discriminator(state, spec, s, lightness, chroma, True) - target))

            real = self.optimizer_d.train_on_batch(lambda: mse(ab, 1.0), self.d_params[s], self.d_slots[s])
            fake_loss = self.optimizer_d.train_on_batch(lambda: mse(fake, 0.0), self.d_params[s], self.d_slots[s])
            row[f"d_loss_s{s + 1}"] = 0.5 * (real + fake_loss)

        def combined():
            out = generator(state, spec, lightness, training=True)
            adversarial = tf.add_n(
                [tf.reduce_mean(tf.square(discriminator(state, spec, s, lightness, out, True) - 1.0)) for s in scales]
            )
            colour = self.l1_lambda * tf.reduce_mean(tf.abs(out - ab))
            row.update(g_adversarial=float(adversarial), g_colour=float(colour))
            return adversarial + colour

        self.optimizer_g.train_on_batch(combined, self.g_params, self.g_slots)
        return row

    def moments(self):
        """`{variable name: (m, v)}` for every trainable variable of both networks."""
        names = {id(v): k for k, v in self.state.items()}
        pairs = zip(self.g_params + sum(self.d_params, []), self.g_slots + sum(self.d_slots, []))
        return {names[id(p)]: slots for p, slots in pairs}
