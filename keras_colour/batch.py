"""What one batch holds, made explicit: the pipeline says its layout, the trainer and evaluation read it.

A pipeline yields either Lab already (`(L_n, ab_n)`) or RGB for Lab on the accelerator (`rgb`), each
optionally followed by a segmentation mask. `BatchLayout` turns such an element into a `Batch`.
"""

import dataclasses

import tensorflow as tf

from keras_colour import colour


@dataclasses.dataclass
class Batch:
    """One batch: `lightness` L_n `[B, H, W, 1]`, `ab` ab_n `[B, H, W, 2]`, `mask` int `[B, H, W]` or None."""

    lightness: tf.Tensor
    ab: tf.Tensor
    mask: tf.Tensor = None

    def first(self, count):
        """The first `count` images of the batch."""
        return Batch(self.lightness[:count], self.ab[:count], None if self.mask is None else self.mask[:count])


@dataclasses.dataclass(frozen=True)
class BatchLayout:
    """How a pipeline's elements are laid out.

    Args:
        rgb: bool. Elements carry RGB in [0, 1] (`data.lab_on_device`); Lab is computed in the step.
            Otherwise they carry `(L_n, ab_n)`.
        mask: bool. A segmentation mask follows the image.
    """

    rgb: bool = False
    mask: bool = False

    @property
    def description(self):
        image = "rgb" if self.rgb else "(L_n, ab_n)"
        return f"{image} + mask" if self.mask else image

    def unpack(self, data):
        """A pipeline element (tensor or tuple) -> `Batch`; a clear error if it does not fit the layout."""
        items = tuple(data) if isinstance(data, (list, tuple)) else (data,)
        expected = (1 if self.rgb else 2) + int(self.mask)
        channels = (3,) if self.rgb else (1, 2)
        if len(items) != expected or any(item.shape[-1] != c for item, c in zip(items, channels)):
            shapes = [tuple(item.shape) for item in items]
            raise ValueError(
                f"Expected batches laid out as {self.description}; got {len(items)} item(s) of shapes {shapes}."
            )
        if self.rgb:
            lightness, ab = colour.rgb_to_lab_normalized(tf.cast(items[0], tf.float32))
        else:
            lightness, ab = tf.cast(items[0], tf.float32), tf.cast(items[1], tf.float32)
        return Batch(lightness, ab, items[-1] if self.mask else None)
