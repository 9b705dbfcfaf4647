"""`ColourGAN`: one `keras.Model` that trains every model family of the thesis.

The U-Net L1 baseline (no discriminator), pix2pix (BCE), Gorriz (LSGAN per
scale), any of them with the feature reconstruction loss, and the
segmentation variants, all through `fit`/`evaluate`, so callbacks, progress
bars, CSV logs and TensorBoard work unchanged.

One step runs the generator once and the discriminator on the real and the
generated pair, under two tapes (as the TensorFlow pix2pix reference does):
the generator's gradients are applied to the generator's trainable variables
only, the discriminator's to the discriminator's only.
"""

import contextlib
import logging

import keras
import tensorflow as tf

from keras_colour import colour, losses
from keras_colour.models.fast import call_generator

logger = logging.getLogger(__name__)


def _replicas():
    return tf.distribute.get_strategy().num_replicas_in_sync


class ColourGAN(keras.Model):
    """A conditional GAN (or plain regression) for L -> ab colourisation.

    Args:
        generator: `keras.Model` from L_n `[B, H, W, 1]` to ab_n `[B, H, W, 2]`
            (`2 * n_classes` channels for `shared_decoder`, a dict with `ab`
            and `segmentation` for `separate_decoders`).
        discriminator: `keras.Model` or None. Takes `[L, ab]`; returns one patch
            map or a list of them (one per scale).
        feature_loss: `FeatureReconstruction` or None. The perceptual head.
        segmentation: str. `none`, `shared_decoder` or `separate_decoders`.
        fast_upsampling: bool. Run the generator's upsample + 4x4 conv pairs at low resolution
            (`keras_colour.models.fast`): the same function with 1.8x fewer multiply-adds in those
            layers. Defaults to True.
    """

    def __init__(self, generator, discriminator=None, feature_loss=None, segmentation="none", fast_upsampling=True, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.fast_upsampling = fast_upsampling
        self.discriminator = discriminator
        self.feature_loss = feature_loss
        self.segmentation = segmentation
        # 0 while a separate-decoders model is pre-trained for segmentation only.
        self.colour_on = tf.Variable(1.0, trainable=False, dtype=tf.float32, name="colour_on")
        self._trackers = {}

    def compile(
        self,
        g_optimizer,
        d_optimizer=None,
        colour_loss="l1",
        colour_weight=100.0,
        smooth_l1_delta=1.0,
        adversarial="none",
        adversarial_weight=1.0,
        feature_weight=1e-5,
        segmentation_weight=1.0,
        present_classes_only=False,
        jit_compile=False,
        **kwargs,
    ):
        """Sets the optimisers and the loss settings.

        Args:
            g_optimizer, d_optimizer: Keras optimisers for each network.
            colour_loss: str. `l1` or `smooth_l1`. colour_weight: float (100).
            adversarial: str. `none`, `lsgan` or `bce`. adversarial_weight: float (1).
            feature_weight: float. Weight of the feature reconstruction loss (1e-5).
            segmentation_weight: float. Weight of the segmentation term.
            present_classes_only: bool. Shared decoder: average over present classes.
            jit_compile: bool. Compile the step with XLA.
        """
        super().compile(jit_compile=jit_compile, **kwargs)
        if self.discriminator is not None and adversarial == "none":
            raise ValueError("A discriminator was given but adversarial='none'. Accepted values: ['lsgan', 'bce'].")
        if self.discriminator is not None and d_optimizer is None:
            raise ValueError("A discriminator needs `d_optimizer`.")
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.settings = dict(
            colour_loss=colour_loss,
            colour_weight=float(colour_weight),
            smooth_l1_delta=float(smooth_l1_delta),
            adversarial=adversarial if self.discriminator is not None else "none",
            adversarial_weight=float(adversarial_weight),
            feature_weight=float(feature_weight),
            segmentation_weight=float(segmentation_weight),
            present_classes_only=bool(present_classes_only),
        )
        names = ["g_loss", "g_colour"]
        if self.settings["adversarial"] != "none":
            names.append("g_adversarial")
        if self.feature_loss is not None:
            names.append("g_feature")
        if self.segmentation == "separate_decoders":
            names.append("g_segmentation")
        if self.discriminator is not None:
            names.append("d_loss")
            n_scales = len(self.discriminator.outputs)
            if n_scales > 1:
                names += [f"d_loss_s{i + 1}" for i in range(n_scales)]
        self._trackers = {name: keras.metrics.Mean(name=name) for name in names}

    @property
    def metrics(self):
        return list(self._trackers.values())

    def call(self, inputs, training=False):
        return self.run_generator(inputs, training=training)

    def run_generator(self, lightness, training=False):
        if self.fast_upsampling:
            return call_generator(self.generator, lightness, training=training)
        return self.generator(lightness, training=training)

    # -- data ------------------------------------------------------------------
    def unpack(self, data):
        """Accepts `(L_n, ab_n)`, `(L_n, ab_n, mask)`, `rgb` or `(rgb, mask)`."""
        items = tuple(data) if isinstance(data, (list, tuple)) else (data,)
        first = items[0]
        if first.shape[-1] == 3:  # RGB: Lab on the accelerator (`lab_on_device`)
            lightness, ab = colour.rgb_to_lab_normalized(tf.cast(first, tf.float32))
            mask = items[1] if len(items) > 1 else None
        elif first.shape[-1] == 1 and len(items) >= 2:
            lightness, ab = tf.cast(items[0], tf.float32), tf.cast(items[1], tf.float32)
            mask = items[2] if len(items) > 2 else None
        else:
            raise ValueError(
                "ColourGAN expects batches of (L_n, ab_n), (L_n, ab_n, mask), rgb or (rgb, mask); "
                f"got {len(items)} item(s), the first of shape {first.shape}."
            )
        if self.segmentation != "none" and mask is None:
            raise ValueError(f"segmentation={self.segmentation!r} needs a class mask in every batch: (L_n, ab_n, mask).")
        return lightness, ab, mask

    # -- losses ------------------------------------------------------------------
    def _generator_terms(self, lightness, ab, mask, outputs, fake_ab, fake_judgement):
        s = self.settings
        terms = {}
        if self.segmentation == "shared_decoder":
            colour_term = losses.shared_decoder_loss(ab, outputs, mask, s["present_classes_only"])
        else:
            colour_term = losses.colour_loss(ab, fake_ab, s["colour_loss"], s["smooth_l1_delta"])
        terms["g_colour"] = s["colour_weight"] * colour_term * self.colour_on
        if fake_judgement is not None:
            adversarial = losses.generator_adversarial_loss(fake_judgement, s["adversarial"])
            terms["g_adversarial"] = s["adversarial_weight"] * adversarial * self.colour_on
        if self.feature_loss is not None:
            real_rgb = colour.lab_normalized_to_rgb(lightness, ab)
            fake_rgb = colour.lab_normalized_to_rgb(lightness, fake_ab)
            terms["g_feature"] = s["feature_weight"] * tf.reduce_mean(self.feature_loss(real_rgb, fake_rgb)) * self.colour_on
        if self.segmentation == "separate_decoders":
            terms["g_segmentation"] = s["segmentation_weight"] * losses.segmentation_loss(mask, outputs["segmentation"])
        return terms

    def _forward(self, data, training):
        lightness, ab, mask = self.unpack(data)
        outputs = self.run_generator(lightness, training=training)
        fake_ab = losses.ab_prediction(outputs, mask)
        d_terms, fake_judgement = [], None
        if self.discriminator is not None:
            real_judgement = self.discriminator([lightness, ab], training=training)
            fake_judgement = self.discriminator([lightness, fake_ab], training=training)
            d_terms = losses.discriminator_losses(real_judgement, fake_judgement, self.settings["adversarial"])
        terms = self._generator_terms(lightness, ab, mask, outputs, fake_ab, fake_judgement)
        return terms, d_terms

    def _record(self, terms, d_terms):
        g_total = tf.add_n(list(terms.values()))
        self._trackers["g_loss"].update_state(g_total)
        for name, value in terms.items():
            self._trackers[name].update_state(value)
        if d_terms:
            d_total = tf.add_n(d_terms)
            self._trackers["d_loss"].update_state(d_total)
            if len(d_terms) > 1:
                for i, value in enumerate(d_terms):
                    self._trackers[f"d_loss_s{i + 1}"].update_state(value)
            return g_total, d_total
        return g_total, None

    def train_step(self, data):
        n = _replicas()
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            terms, d_terms = self._forward(data, training=True)
            g_total, d_total = self._record(terms, d_terms)
            # Per-replica means, summed across replicas by the optimiser: divide by the replica count.
            g_scaled = self.g_optimizer.scale_loss(g_total / n)
            d_scaled = self.d_optimizer.scale_loss(d_total / n) if d_total is not None else None
        g_vars = self.generator.trainable_variables
        self.g_optimizer.apply(g_tape.gradient(g_scaled, g_vars), g_vars)
        if d_scaled is not None:
            d_vars = self.discriminator.trainable_variables
            self.d_optimizer.apply(d_tape.gradient(d_scaled, d_vars), d_vars)
        return {name: tracker.result() for name, tracker in self._trackers.items()}

    def test_step(self, data):
        terms, d_terms = self._forward(data, training=False)
        self._record(terms, d_terms)
        return {name: tracker.result() for name, tracker in self._trackers.items()}

    def predict_step(self, data):
        items = tuple(data) if isinstance(data, (list, tuple)) else (data,)
        lightness = items[0]
        if lightness.shape[-1] == 3:
            lightness, _ = colour.rgb_to_lab_normalized(tf.cast(lightness, tf.float32))
        return self.run_generator(lightness, training=False)


@contextlib.contextmanager
def dtype_policy(name):
    """Sets Keras's global dtype policy for the duration of a block."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32" if name == "none" else name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def get_strategy(kind):
    """`none` (default strategy), `mirrored` (all local devices) or `multi_worker` (TF_CONFIG)."""
    if kind == "none":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    if kind == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"Unknown distribute {kind!r}. Accepted values: ['none', 'mirrored', 'multi_worker'].")


def _optimizer(learning_rate, train_config):
    opt = keras.optimizers.Adam(learning_rate=learning_rate, beta_1=train_config.beta_1, beta_2=train_config.beta_2)
    if train_config.mixed_precision == "mixed_float16":
        # float16 gradients underflow without loss scaling; bfloat16 has float32's range.
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt


def build_trainer(config, strategy=None):
    """Builds the compiled `ColourGAN` a `Config` describes, ready for `fit`.

    Networks and optimisers are created inside the distribution strategy's
    scope and under the configured dtype policy.
    """
    from keras_colour.models import build_discriminator, build_generator, discriminator_options, generator_options
    from keras_colour.models.perceptual import FeatureReconstruction

    strategy = strategy or get_strategy(config.train.distribute)
    m, train = config.model, config.train
    size = config.data.image_size
    with strategy.scope(), dtype_policy(train.mixed_precision):
        generator = build_generator(m.generator, size, **generator_options(m))
        discriminator = None
        if m.discriminator != "none":
            discriminator = build_discriminator(m.discriminator, size, **discriminator_options(m))
        feature = None
        if config.loss.feature is not None:
            f = config.loss.feature
            feature = FeatureReconstruction(f.backbone, f.layers, f.weights, f.allow_random_weights, image_size=size)
        model = ColourGAN(
            generator, discriminator, feature, segmentation=m.segmentation, fast_upsampling=train.fast_upsampling, name="colour_gan"
        )
        g_opt = _optimizer(train.g_learning_rate, train)
        d_opt = _optimizer(train.d_learning_rate, train) if discriminator is not None else None
        loss = config.loss
        model.compile(
            g_optimizer=g_opt,
            d_optimizer=d_opt,
            colour_loss=loss.colour,
            colour_weight=loss.colour_weight,
            smooth_l1_delta=loss.smooth_l1_delta,
            adversarial=loss.adversarial,
            adversarial_weight=loss.adversarial_weight,
            feature_weight=config.loss.feature.weight if config.loss.feature else 0.0,
            segmentation_weight=loss.segmentation_weight,
            present_classes_only=loss.present_classes_only,
            jit_compile=train.jit_compile,
        )
        # Optimiser slots exist before any restore, so a checkpoint restores them exactly.
        g_opt.build(generator.trainable_variables)
        if d_opt is not None:
            d_opt.build(discriminator.trainable_variables)
    return model
