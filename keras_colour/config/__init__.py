"""Typed experiment configuration: the schema (`schema`) and YAML/override I/O (`io`).

Importing this package does not import TensorFlow, so `keras-colour check` is fast.
"""

from keras_colour.config.io import apply_overrides, config_from_dict, load_config, read_yaml, save_config
from keras_colour.config.schema import (
    Config,
    ConfigError,
    DataConfig,
    EvaluationConfig,
    FeatureLossConfig,
    LossConfig,
    ModelConfig,
    TrainConfig,
)

__all__ = [
    "Config", "ConfigError", "DataConfig", "EvaluationConfig", "FeatureLossConfig", "LossConfig", "ModelConfig",
    "TrainConfig", "apply_overrides", "config_from_dict", "load_config", "read_yaml", "save_config",
]  # fmt: skip
