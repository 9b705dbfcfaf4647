"""Errors that end a command with a one-line message (no TensorFlow import needed to catch them)."""


class RunExistsError(RuntimeError):
    """The output folder already holds a run and neither resume nor overwrite was asked."""


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; training was stopped."""


class FeatureWeightsError(RuntimeError):
    """Pretrained weights for a feature network could not be found or fetched."""
