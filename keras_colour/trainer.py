"""`ColourGAN`: one `keras.Model` that trains every model family of the thesis, and `build_trainer`.

The U-Net L1 baseline (no discriminator), pix2pix (BCE), Gorriz (LSGAN per scale), any of them with the
feature reconstruction loss, and the segmentation variants, all through `fit`/`evaluate`, so callbacks,
progress bars, CSV logs and TensorBoard work unchanged. `build_trainer` is the only code that reads the
config: it turns names into networks, loss objects, a generator head, a batch layout and an update
protocol, and `ColourGAN` only combines the objects it is given.
"""

import contextlib

import keras
import tensorflow as tf

from keras_colour import colour, heads, losses, protocols
from keras_colour.batch import BatchLayout
from keras_colour.choices import DISTRIBUTE, check_choice
from keras_colour.models import build_discriminator, build_generator, discriminator_options, generator_options
from keras_colour.models.fast import fast_twin
from keras_colour.models.layers import with_bbc_batch_norm
from keras_colour.models.perceptual import FeatureReconstruction


class ColourGAN(keras.Model):
    """A conditional GAN (or plain regression) for L -> ab colourisation.

    Args:
        generator: `keras.Model` from L_n `[B, H, W, 1]` to its head's outputs (saved as `generator.keras`).
        discriminator: `keras.Model` or None. Takes `[L_n, ab_n]`; returns one patch map or a list.
        training_generator: the model run in training steps: the generator or a twin sharing its
            variables (`keras_colour.models.fast.fast_twin`). Defaults to `generator`.
        training_discriminator: the same for the discriminator. Defaults to `discriminator`.
    """

    def __init__(self, generator, discriminator=None, training_generator=None, training_discriminator=None, **kwargs):
        super().__init__(**kwargs)
        self.generator, self.discriminator = generator, discriminator
        self.training_generator = training_generator or generator
        self.training_discriminator = training_discriminator or discriminator
        # 1.0, or 0.0 while separate decoders pre-train on segmentation alone: multiplies every colour term.
        self.colour_terms_gate = tf.Variable(1.0, trainable=False, dtype=tf.float32, name="colour_terms_gate")

    def compile(self, g_optimizer, d_optimizer=None, *, layout, head, colour_loss, protocol, adversarial_loss=None,
                feature_loss=None, weights=None, **kwargs):  # fmt: skip
        """Sets optimisers, loss objects (`keras_colour.losses`, `.heads`), the protocol and term weights.

        `weights` maps `colour`, `adversarial` and `feature` to their weights (100, 1, 1e-5).
        """
        super().compile(**kwargs)
        if {self.discriminator is None, adversarial_loss is None, d_optimizer is None} != {self.discriminator is None}:
            raise ValueError(
                "A discriminator needs `adversarial_loss` and `d_optimizer`, and neither goes without one."
            )
        self.g_optimizer, self.d_optimizer, self.layout, self.head = g_optimizer, d_optimizer, layout, head
        self.colour_loss, self.adversarial_loss, self.feature_loss = colour_loss, adversarial_loss, feature_loss
        self.protocol, self.term_weights = (
            protocol,
            {"colour": 100.0, "adversarial": 1.0, "feature": 1e-5, **(weights or {})},
        )
        protocol.bind(self)
        names = tracker_names(head, self.discriminator, feature_loss is not None, colour_loss)
        self._trackers = {name: keras.metrics.Mean(name=name) for name in names}

    @property
    def metrics(self):
        return list(getattr(self, "_trackers", {}).values())

    def call(self, lightness, training=False):
        return self.generator(lightness, training=training)

    def generate(self, batch, training):
        """The training generator's outputs and its ab prediction for a `Batch`."""
        outputs = self.training_generator(batch.lightness, training=training)
        return outputs, self.head.ab(outputs, batch.mask)

    def judge(self, batch, ab, training):
        """The discriminator's patch map(s) for `(L, ab)`; None without a discriminator."""
        if self.discriminator is None:
            return None
        return self.training_discriminator([batch.lightness, ab], training=training)

    def generator_terms(self, batch, outputs, fake_ab, fake_judgement):
        colour_term, extra = self.head.terms(batch, outputs, fake_ab, self.colour_loss)
        parts = colour_term if isinstance(colour_term, dict) else {"colour": colour_term}  # a loss with named parts
        terms = {f"g_{name}": self.term_weights["colour"] * value for name, value in parts.items()}
        if fake_judgement is not None:
            terms["g_adversarial"] = self.term_weights["adversarial"] * self.adversarial_loss.generator(fake_judgement)
        if self.feature_loss is not None:
            real_rgb, fake_rgb = (colour.lab_normalized_to_rgb(batch.lightness, ab) for ab in (batch.ab, fake_ab))
            terms["g_feature"] = self.term_weights["feature"] * tf.reduce_mean(self.feature_loss(real_rgb, fake_rgb))
        return {**{name: value * self.colour_terms_gate for name, value in terms.items()}, **extra}

    def record(self, g_terms, d_terms):
        values = {"g_loss": tf.add_n(list(g_terms.values())), **g_terms}
        if "g_feature" in g_terms:
            values["g_feature_ratio"] = tf.math.divide_no_nan(g_terms["g_feature"], g_terms["g_colour"])
        if d_terms:
            values["d_loss"] = tf.add_n(d_terms)
            values.update({f"d_loss_s{i + 1}": term for i, term in enumerate(d_terms)} if len(d_terms) > 1 else {})
        for name, value in values.items():
            self._trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self._trackers.items()}

    def train_step(self, data):
        return self.record(*self.protocol.train_step(self, self.layout.unpack(data)))

    def test_step(self, data):
        batch = self.layout.unpack(data)
        outputs, fake_ab = self.generate(batch, training=False)
        fake_judgement = self.judge(batch, fake_ab, training=False)
        d_terms = (
            []
            if fake_judgement is None
            else self.adversarial_loss.discriminator(self.judge(batch, batch.ab, False), fake_judgement)
        )
        return self.record(self.generator_terms(batch, outputs, fake_ab, fake_judgement), d_terms)

    def predict_step(self, data):
        return self.generate(self.layout.unpack(data), training=False)[1]


def tracker_names(head, discriminator, feature, colour_loss=None):
    """The loss terms `ColourGAN` reports: generator terms, then the discriminator's (per scale if several)."""
    names = ["g_loss", "g_colour"] + [f"g_{n}" for n in getattr(colour_loss, "extra_terms", ())]
    names += ["g_adversarial"] * (discriminator is not None) + list(head.extra_terms)
    names += ["g_feature", "g_feature_ratio"] * feature
    if discriminator is not None:
        scales = len(discriminator.outputs)
        names += ["d_loss"] + [f"d_loss_s{i + 1}" for i in range(scales)] * (scales > 1)
    return names


@contextlib.contextmanager
def dtype_policy(name):
    """Sets Keras's global dtype policy for the duration of a block."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32" if name == "none" else name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


STRATEGIES = {
    "none": tf.distribute.get_strategy,
    "mirrored": tf.distribute.MirroredStrategy,
    "multi_worker": tf.distribute.MultiWorkerMirroredStrategy,
}


def get_strategy(kind):
    """`none` (default strategy), `mirrored` (all local devices) or `multi_worker` (TF_CONFIG)."""
    check_choice("distribute", kind, DISTRIBUTE)
    return STRATEGIES[kind]()


def build_optimizer(learning_rate, train_config):
    """Adam with the config's beta_1 and beta_2 at `learning_rate`, wrapped for loss scaling under `mixed_float16`."""
    opt = keras.optimizers.Adam(learning_rate=learning_rate, beta_1=train_config.beta_1, beta_2=train_config.beta_2)
    if train_config.mixed_precision == "mixed_float16":
        # float16 gradients underflow without loss scaling; bfloat16 has float32's range.
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt


def build_trainer(config, strategy=None, layout=None):
    """Builds the compiled `ColourGAN` a `Config` describes, ready for `fit`.

    Networks and optimisers are created inside the distribution strategy's scope and under the
    configured dtype policy.

    Args:
        config: a `keras_colour.config.Config`.
        strategy: a `tf.distribute.Strategy`; from `config.train.distribute` when None.
        layout: the `BatchLayout` of the batches `fit` will get; from the config's data section when None.
    """
    strategy = strategy or get_strategy(config.train.distribute)
    m, train, loss = config.model, config.train, config.loss
    size = config.data.image_size
    layout = layout or BatchLayout(rgb=config.data.lab_on_device, mask=m.segmentation != "none")
    with strategy.scope(), dtype_policy(train.mixed_precision):
        generator = build_generator(m.generator, size, **generator_options(m))
        discriminator = (
            build_discriminator(m.discriminator, size, **discriminator_options(m))
            if m.discriminator != "none"
            else None
        )
        if m.batch_norm == "bbc":  # Keras 2.2.4's moving statistics, in every network (the BBC code's)
            generator = with_bbc_batch_norm(generator)
            discriminator = with_bbc_batch_norm(discriminator) if discriminator is not None else None
        feature = None
        if loss.feature is not None:
            f = loss.feature
            feature = FeatureReconstruction(
                f.backbone, f.layers, f.weights, f.allow_random_weights, image_size=size, input=f.input
            )
        # Twins sharing the variables: up-convolutions at low resolution (fast_upsampling), spectral norm's
        # update off the gradient tape (the same function, traced in a third of the time).
        model = ColourGAN(
            generator,
            discriminator,
            training_generator=fast_twin(generator, fuse_upsampling=train.fast_upsampling),
            training_discriminator=fast_twin(discriminator, fuse_upsampling=False) if discriminator else None,
            name="colour_gan",
        )
        g_opt = build_optimizer(train.g_learning_rate, train)
        d_opt = build_optimizer(train.d_learning_rate, train) if discriminator is not None else None
        model.compile(
            g_opt,
            d_opt,
            layout=layout,
            head=heads.build_head(m.segmentation, loss),
            colour_loss=losses.colour_loss(loss.colour, loss),
            adversarial_loss=losses.adversarial_loss(loss.adversarial) if discriminator is not None else None,
            feature_loss=feature,
            protocol=protocols.build_protocol(train.protocol),
            weights={
                "colour": loss.colour_weight,
                "adversarial": loss.adversarial_weight,
                "feature": loss.feature.weight if loss.feature else 0.0,
            },
            jit_compile=train.jit_compile,
        )
        # Optimiser slots exist before any restore, so a checkpoint restores them exactly.
        g_opt.build(generator.trainable_variables)
        if d_opt is not None:
            d_opt.build(discriminator.trainable_variables)
    return model
