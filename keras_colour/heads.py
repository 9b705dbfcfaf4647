"""Generator heads: how a generator's outputs become ab, and which colour terms they are trained with.

* `plain`: the generator outputs ab `[B, H, W, 2]`; trained with the colour loss.
* `shared_decoder`: one (a, b) pair per class `[B, H, W, 2K]`; each pixel takes its class's pair, and the
  per-class L1 of thesis 4.3.1 trains it (`present_classes_only` averages over present classes).
* `separate_decoders`: a dict with `ab` and `segmentation` logits; the colour loss plus a weighted
  segmentation cross-entropy.
"""

import tensorflow as tf

from keras_colour import choices, losses


class PlainHead:
    """ab straight from the generator."""

    extra_terms = ()

    def ab(self, outputs, mask=None):
        return tf.cast(outputs, tf.float32)

    def terms(self, batch, outputs, fake_ab, colour_loss):
        """The unweighted colour term, and a dict of the head's own terms (already weighted)."""
        return colour_loss(batch.ab, fake_ab), {}


class SharedDecoderHead:
    """An (a, b) pair per class, selected by the class mask.

    Args:
        present_classes_only: bool. Average the per-class losses over the classes present only.
        target: str. `grey_elsewhere` or `class_pixels` (see `losses.shared_decoder_loss`).
    """

    extra_terms = ()

    def __init__(self, present_classes_only=False, target="grey_elsewhere"):
        self.present_classes_only, self.target = present_classes_only, target

    def ab(self, outputs, mask=None):
        if mask is None:
            raise ValueError(
                f"This generator outputs {outputs.shape[-1]} channels (one ab pair per class): a class mask is needed."
            )
        return losses.select_class_ab(outputs, mask)

    def terms(self, batch, outputs, fake_ab, colour_loss):
        return losses.shared_decoder_loss(batch.ab, outputs, batch.mask, self.present_classes_only, self.target), {}


class SeparateDecodersHead:
    """A colour decoder and a segmentation decoder over one encoder.

    Args:
        segmentation_weight: float. Weight of the segmentation cross-entropy.
    """

    extra_terms = ("g_segmentation",)

    def __init__(self, segmentation_weight=1.0):
        self.segmentation_weight = float(segmentation_weight)

    def ab(self, outputs, mask=None):
        return tf.cast(outputs["ab"], tf.float32)

    def terms(self, batch, outputs, fake_ab, colour_loss):
        segmentation = self.segmentation_weight * losses.segmentation_loss(batch.mask, outputs["segmentation"])
        return colour_loss(batch.ab, fake_ab), {"g_segmentation": segmentation}


# name -> head, built from the `loss` section of a config.
HEADS = {
    "none": lambda loss: PlainHead(),
    "shared_decoder": lambda loss: SharedDecoderHead(loss.present_classes_only, loss.shared_decoder_target),
    "separate_decoders": lambda loss: SeparateDecodersHead(loss.segmentation_weight),
}
choices.check_registry("HEADS", HEADS, choices.SEGMENTATION_HEADS)


def build_head(segmentation, loss_config):
    """The head for a `model.segmentation` value, with its options from a `LossConfig`."""
    choices.check_choice("segmentation", segmentation, choices.SEGMENTATION_HEADS)
    return HEADS[segmentation](loss_config)


def head_for_model(model):
    """The head of a (possibly loaded) generator, read from its output structure."""
    output = model.output
    if isinstance(output, dict):
        return SeparateDecodersHead()
    return PlainHead() if output.shape[-1] == 2 else SharedDecoderHead()


def predict_ab(generator, lightness, mask=None, head=None):
    """Runs a generator in inference mode and returns its ab prediction `[B, H, W, 2]` float32.

    Args:
        generator: a Keras model from L_n to its head's outputs.
        lightness: L_n `[B, H, W, 1]`.
        mask: class mask `[B, H, W]`; only a shared decoder needs it.
        head: the generator's head; read from the model's outputs when None.
    """
    head = head or head_for_model(generator)
    return head.ab(generator(lightness, training=False), mask)
