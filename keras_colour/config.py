"""Typed experiment configuration.

The schema lives in code (dataclasses whose defaults are the thesis/SPEC
values); a YAML file only overrides it. Loading is strict: an unknown key, a
wrong type or a bad value raises `ConfigError` naming the key, the value and
the file. `${VAR}` (or `${VAR:-default}`) in strings is expanded from the
environment. The resolved config is written as `config.yaml` into each run.
"""

import dataclasses
import os
import re
import typing
from typing import Literal, Optional

import yaml


class ConfigError(ValueError):
    """A config file or override holds an unknown key or a bad value."""


def _fail(source, key, message):
    where = f"{source}: " if source else ""
    raise ConfigError(f"{where}`{key}`: {message}")


@dataclasses.dataclass
class DataConfig:
    """Where images come from and how batches are made.

    kind: `demo` (built in, no network), `folder` (one sub-folder per class, as
    ImageNet), `list` (a text file of paths) or `voc` (Pascal VOC 2012
    segmentation).
    """

    kind: Literal["demo", "folder", "list", "voc"] = "demo"
    train: Optional[str] = None
    test: Optional[str] = None
    test_per_class: int = 10
    max_train_images: Optional[int] = None
    image_size: int = 256
    resize_method: Literal["bilinear", "nearest", "bicubic", "area"] = "bilinear"
    antialias: bool = True
    batch_size: int = 16
    shuffle_buffer: int = 2048
    flip: bool = True
    cache: bool = False
    lab_on_device: bool = False
    voc_train_split: str = "train"
    voc_test_split: str = "val"
    demo_train_crops: int = 320
    demo_cache_dir: Optional[str] = None

    def validate(self, source=None):
        _positive(self, "image_size", source, prefix="data")
        _positive(self, "batch_size", source, prefix="data")
        _positive(self, "test_per_class", source, prefix="data")
        _positive(self, "shuffle_buffer", source, prefix="data")
        _positive(self, "demo_train_crops", source, prefix="data")
        if self.max_train_images is not None:
            _positive(self, "max_train_images", source, prefix="data")
        if self.kind in ("folder", "list", "voc") and not self.train:
            _fail(source, "data.train", f"is required when data.kind is {self.kind!r}")


@dataclasses.dataclass
class ModelConfig:
    """Which networks to build (SPEC section 2)."""

    generator: str = "gorriz"
    norm: Literal["bn", "in", "ibn", "none"] = "bn"
    spectral_norm: bool = False
    instance_norm: Literal["channel", "sample"] = "channel"
    base_filters: int = 64
    max_filters: int = 512
    num_downsamples: Optional[int] = None
    dropout: float = 0.5
    discriminator: str = "none"
    d_scales: int = 1
    segmentation: Literal["none", "shared_decoder", "separate_decoders"] = "none"
    n_classes: int = 21

    def validate(self, source=None):
        _positive(self, "base_filters", source, prefix="model")
        _positive(self, "max_filters", source, prefix="model")
        _positive(self, "n_classes", source, prefix="model")
        if self.num_downsamples is not None:
            _positive(self, "num_downsamples", source, prefix="model")
        if not 0.0 <= self.dropout < 1.0:
            _fail(source, "model.dropout", f"must be in [0, 1). Received: {self.dropout!r}")
        if not 1 <= self.d_scales <= 3:
            _fail(source, "model.d_scales", f"must be 1, 2 or 3. Received: {self.d_scales!r}")
        from keras_colour.models import registry  # late import: models import TensorFlow

        for key, table in (("generator", registry.GENERATORS), ("discriminator", registry.DISCRIMINATORS)):
            value = getattr(self, key)
            allowed = sorted(table) + (["none"] if key == "discriminator" else [])
            if value not in allowed:
                _fail(source, f"model.{key}", f"unknown value {value!r}; accepted: {allowed}")


@dataclasses.dataclass
class FeatureLossConfig:
    """Feature reconstruction (perceptual) loss, Johnson et al. 2016 (thesis 4.2)."""

    backbone: str = "vgg16"
    layers: list = dataclasses.field(default_factory=lambda: ["block3_conv3"])
    weight: float = 1e-5
    weights: str = "imagenet"
    allow_random_weights: bool = False

    def validate(self, source=None):
        from keras_colour.models import registry

        if self.backbone not in registry.BACKBONES:
            _fail(source, "loss.feature.backbone", f"unknown value {self.backbone!r}; accepted: {sorted(registry.BACKBONES)}")
        if not self.layers or not all(isinstance(x, str) for x in self.layers):
            _fail(source, "loss.feature.layers", f"must be a non-empty list of layer names. Received: {self.layers!r}")
        if self.weight < 0:
            _fail(source, "loss.feature.weight", f"must be >= 0. Received: {self.weight!r}")


@dataclasses.dataclass
class LossConfig:
    """Generator and discriminator loss terms and their weights."""

    colour: Literal["l1", "smooth_l1"] = "l1"
    colour_weight: float = 100.0
    smooth_l1_delta: float = 1.0
    adversarial: Literal["none", "lsgan", "bce"] = "none"
    adversarial_weight: float = 1.0
    feature: Optional[FeatureLossConfig] = None
    segmentation_weight: float = 1.0
    present_classes_only: bool = False

    def validate(self, source=None):
        for key in ("colour_weight", "adversarial_weight", "segmentation_weight", "smooth_l1_delta"):
            if getattr(self, key) < 0:
                _fail(source, f"loss.{key}", f"must be >= 0. Received: {getattr(self, key)!r}")


@dataclasses.dataclass
class TrainConfig:
    """Optimisation, checkpointing and execution settings."""

    epochs: int = 200
    steps_per_epoch: Optional[int] = None
    g_learning_rate: float = 2e-4
    d_learning_rate: float = 2e-4
    beta_1: float = 0.5
    beta_2: float = 0.999
    segmentation_pretrain_epochs: int = 0
    distribute: Literal["none", "mirrored", "multi_worker"] = "none"
    mixed_precision: Literal["none", "mixed_float16", "mixed_bfloat16"] = "none"
    jit_compile: bool = False
    fast_upsampling: bool = True
    deterministic: bool = False
    sample_images: int = 4
    eval_max_images: Optional[int] = None
    verbose: int = 1

    def validate(self, source=None):
        _positive(self, "epochs", source, prefix="train")
        if self.steps_per_epoch is not None:
            _positive(self, "steps_per_epoch", source, prefix="train")
        for key in ("g_learning_rate", "d_learning_rate"):
            if not getattr(self, key) > 0:
                _fail(source, f"train.{key}", f"must be > 0. Received: {getattr(self, key)!r}")
        for key in ("beta_1", "beta_2"):
            if not 0 <= getattr(self, key) < 1:
                _fail(source, f"train.{key}", f"must be in [0, 1). Received: {getattr(self, key)!r}")
        if self.segmentation_pretrain_epochs < 0:
            _fail(source, "train.segmentation_pretrain_epochs", "must be >= 0")


@dataclasses.dataclass
class Config:
    """A whole experiment: `data`, `model`, `loss`, `train`, `output_dir`, `seed`."""

    name: str = "experiment"
    output_dir: str = "runs/experiment"
    seed: int = 42
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    # The file this config came from; not part of the schema.
    source: Optional[str] = dataclasses.field(default=None, repr=False, compare=False)

    def validate(self):
        self.data.validate(self.source)
        self.model.validate(self.source)
        self.loss.validate(self.source)
        if self.loss.feature is not None:
            self.loss.feature.validate(self.source)
        self.train.validate(self.source)
        if self.model.discriminator != "none" and self.loss.adversarial == "none":
            _fail(self.source, "loss.adversarial", f"is 'none' but model.discriminator is {self.model.discriminator!r}; choose 'lsgan' or 'bce'")
        if self.model.discriminator == "none" and self.loss.adversarial != "none":
            _fail(self.source, "model.discriminator", f"is 'none' but loss.adversarial is {self.loss.adversarial!r}")
        if self.model.segmentation != "none" and self.data.kind != "voc":
            _fail(self.source, "model.segmentation", f"{self.model.segmentation!r} needs class masks: set data.kind to 'voc'")
        if self.train.segmentation_pretrain_epochs and self.model.segmentation != "separate_decoders":
            _fail(self.source, "train.segmentation_pretrain_epochs", "only applies to model.segmentation 'separate_decoders'")
        return self

    def check_paths(self):
        """Raises `ConfigError` if a data path the config names does not exist."""
        for key in ("train", "test"):
            path = getattr(self.data, key)
            if path is not None and not os.path.exists(path):
                _fail(self.source, f"data.{key}", f"path does not exist: {path!r}")

    def to_dict(self):
        out = dataclasses.asdict(self)
        out.pop("source")
        return out


def _positive(obj, key, source, prefix):
    value = getattr(obj, key)
    if not value > 0:
        _fail(source, f"{prefix}.{key}", f"must be > 0. Received: {value!r}")


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(value, key, source):
    def repl(match):
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        _fail(source, key, f"environment variable {name} is not set (used in {value!r})")

    return _ENV.sub(repl, value)


def _coerce(value, hint, key, source):
    """Checks `value` against the type `hint`, converting only where lossless."""
    origin = typing.get_origin(hint)
    if origin is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], key, source)
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            _fail(source, key, f"unknown value {value!r}; accepted: {list(allowed)}")
        return value
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            _fail(source, key, f"must be a mapping. Received: {value!r}")
        return _from_dict(hint, value, key, source)
    if hint is list or origin is list:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            _fail(source, key, f"must be a list. Received: {value!r}")
        return [_expand_env(v, f"{key}[{i}]", source) if isinstance(v, str) else v for i, v in enumerate(value)]
    if hint is bool:
        if not isinstance(value, bool):
            _fail(source, key, f"must be true or false. Received: {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(source, key, f"must be an integer. Received: {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):
            try:  # YAML reads `1e-5` (no dot) as a string.
                value = float(value)
            except ValueError:
                _fail(source, key, f"must be a number. Received: {value!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(source, key, f"must be a number. Received: {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            _fail(source, key, f"must be a string. Received: {value!r}")
        return _expand_env(value, key, source)
    raise TypeError(f"unsupported schema type {hint!r} for {key}")


def _from_dict(cls, data, prefix, source):
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.name != "source"}
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            _fail(source, full, f"unknown key; accepted keys: {sorted(names)}")
        kwargs[key] = _coerce(value, hints[key], full, source)
    return cls(**kwargs)


def _set_nested(tree, dotted, value, source):
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            _fail(source, dotted, f"cannot set a key below {part!r}, which is {child!r}")
        node = child
    node[parts[-1]] = value


def apply_overrides(tree, overrides, source="--set"):
    """Applies `a.b=c` strings (values parsed as YAML) to a nested dict."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value. Received: {item!r}")
        key, raw = item.split("=", 1)
        _set_nested(tree, key.strip(), yaml.safe_load(raw), source)
    return tree


def config_from_dict(data, source=None, overrides=()):
    """Builds and validates a `Config` from a nested dict."""
    data = dict(data or {})
    apply_overrides(data, overrides, source or "--set")
    config = _from_dict(Config, data, "", source)
    config.source = source
    return config.validate()


def load_config(path, overrides=()):
    """Loads a YAML experiment file, applies `a.b=c` overrides and validates it.

    Args:
        path: str. A YAML file.
        overrides: sequence of `"a.b=value"` strings, applied after the file.

    Returns:
        A validated `Config`.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path!r}")
    with open(path, encoding="utf-8") as f:
        try:
            data = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return config_from_dict(data, source=path, overrides=overrides)


def save_config(config, path):
    """Writes the resolved config as YAML (atomically)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        yaml.safe_dump(config.to_dict(), f, sort_keys=False)
    os.replace(tmp, path)
