"""Update protocols: in which order, on which forward passes, the generator and discriminators step.

* `simultaneous`: one forward pass in training mode; the generator and the discriminator each take one
  step from it, under two tapes (the TensorFlow pix2pix tutorial's loop).
* `bbc`: the BBC code's loop (`models/train.py` of bbc/ColorGAN). Fakes come from the generator in
  inference mode (`combined.predict`), and that prediction also runs every discriminator on them in
  inference mode, as `combined` has them among its outputs (`models/colorgan.py:69-71`): their outputs
  are dropped, but each BBC spectral-norm layer takes its power iteration as on every call; then each
  discriminator scale takes two separate optimiser steps, on the real batch against 1 and on the fake
  batch against 0 (Keras 2's `train_on_batch` twice); then the generator takes one step on a fresh
  training-mode forward pass against the updated discriminators (whose BatchNorm statistics that pass
  also updates, as Keras 2.2.4 collected `combined`'s updates once the discriminators were trainable
  again). All scales share one discriminator optimiser, as the BBC code compiled every
  discriminator with one Adam object: Keras 2.2 then advanced its single iteration counter on every
  `train_on_batch`, so the bias correction sees 2 x scales steps per batch, and so does ours.

A protocol gets the `ColourGAN` and a `Batch`, applies its updates, and returns the generator's terms
(a dict) and the discriminator's per-scale losses (a list, empty without a discriminator).
"""

import keras
import tensorflow as tf

from keras_colour import choices
from keras_colour.models.layers import BBCSpectralNormalization


def scaled_total(optimizer, terms):
    """The sum of `terms` as the optimiser should differentiate it: per replica, loss-scaled (float16)."""
    return optimizer.scale_loss(tf.add_n(list(terms)) / tf.distribute.get_strategy().num_replicas_in_sync)


def apply_gradients(optimizer, tape, scaled_loss, variables):
    """One optimiser step on `variables` from the gradients of `scaled_loss` recorded on `tape`."""
    optimizer.apply(tape.gradient(scaled_loss, variables), variables)


class Simultaneous:
    """Generator and discriminator steps from one shared training-mode forward pass."""

    def bind(self, gan):
        pass

    def train_step(self, gan, batch):
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            outputs, fake_ab = gan.generate(batch, training=True)
            fake_judgement = gan.judge(batch, fake_ab, training=True)
            g_terms = gan.generator_terms(batch, outputs, fake_ab, fake_judgement)
            g_scaled = scaled_total(gan.g_optimizer, g_terms.values())
            d_terms = []
            if fake_judgement is not None:
                d_terms = gan.adversarial_loss.discriminator(gan.judge(batch, batch.ab, training=True), fake_judgement)
                d_scaled = scaled_total(gan.d_optimizer, d_terms)
        apply_gradients(gan.g_optimizer, g_tape, g_scaled, gan.generator.trainable_variables)
        if d_terms:
            apply_gradients(gan.d_optimizer, d_tape, d_scaled, gan.discriminator.trainable_variables)
        return g_terms, d_terms


class BBC:
    """The BBC code's alternating updates (see the module docstring)."""

    def __init__(self):
        self.scales = []
        self.judge_fakes_in_inference = False

    def bind(self, gan):
        d = gan.training_discriminator  # (a twin of gan.discriminator sharing its variables, or itself)
        # Only BBC spectral norm changes state in an inference call; otherwise the extra pass is skipped.
        self.judge_fakes_in_inference = d is not None and any(
            isinstance(layer, BBCSpectralNormalization) for layer in d.layers
        )
        if d is None:
            self.scales = []
        elif len(d.outputs) == 1:
            self.scales = [d]
        else:  # one model per scale over the same layers, as the BBC code had one Keras model per scale
            self.scales = [
                keras.Model(d.inputs, output, name=f"{d.name}_scale{i + 1}") for i, output in enumerate(d.outputs)
            ]

    def _discriminator_step(self, gan, scale, batch, ab, target):
        with tf.GradientTape() as tape:
            loss = gan.adversarial_loss.against(scale([batch.lightness, ab], training=True), target)
            scaled = scaled_total(gan.d_optimizer, [loss])
        apply_gradients(gan.d_optimizer, tape, scaled, scale.trainable_variables)
        return loss

    def train_step(self, gan, batch):
        d_terms = []
        if self.scales:
            _, fake_ab = gan.generate(batch, training=False)
            fake_ab = tf.stop_gradient(fake_ab)
            if self.judge_fakes_in_inference:  # the rest of `combined.predict`: only its state changes
                gan.judge(batch, fake_ab, training=False)
            for scale in self.scales:
                real = self._discriminator_step(gan, scale, batch, batch.ab, 1.0)
                fake = self._discriminator_step(gan, scale, batch, fake_ab, 0.0)
                d_terms.append(0.5 * (real + fake))
        with tf.GradientTape() as tape:
            outputs, fake_ab = gan.generate(batch, training=True)
            g_terms = gan.generator_terms(batch, outputs, fake_ab, gan.judge(batch, fake_ab, training=True))
            scaled = scaled_total(gan.g_optimizer, g_terms.values())
        apply_gradients(gan.g_optimizer, tape, scaled, gan.generator.trainable_variables)
        return g_terms, d_terms


PROTOCOLS = {}


def register_protocol(name):
    """Registers an update protocol under `name`, usable as `train.protocol: NAME` (see docs/extending.md).

    Decorates a class called with no arguments, with `bind(gan)` (called once by `ColourGAN.compile`) and
    `train_step(gan, batch)`, which applies its updates and returns the generator's terms (a dict, each
    summed into `g_loss`) and the discriminator's per-scale losses (a list, empty without a discriminator).
    """
    return choices.registrar(PROTOCOLS, choices.PROTOCOLS, "protocol")(name)


register_protocol("simultaneous")(Simultaneous)
register_protocol("bbc")(BBC)
choices.check_registry("PROTOCOLS", PROTOCOLS, choices.PROTOCOLS)


def build_protocol(name):
    """The update protocol called `name` (`simultaneous`, `bbc` or a registered one)."""
    choices.check_choice("protocol", name, choices.PROTOCOLS)
    return PROTOCOLS[name]()
