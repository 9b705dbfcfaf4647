"""Errors that end a command with a one-line message (no TensorFlow import needed to catch them).

Every `UserError` is an ordinary mistake or an outcome the user must act on: the command line prints
`keras-colour: error: <message>` and exits 2, without a traceback.
"""


class UserError(RuntimeError):
    """A mistake the user can fix; the message says what and how."""


class RunExistsError(UserError):
    """The output folder already holds a run and neither resume nor overwrite was asked."""


class RunLockedError(UserError):
    """Another process is writing to the run folder."""


class ResumeMismatchError(UserError):
    """`--resume` with a config that changes what the checkpoint holds."""


class NonFiniteLossError(UserError):
    """A loss, a metric or a weight became NaN or infinite; training was stopped."""


class FeatureWeightsError(UserError):
    """Pretrained weights for a feature network could not be found or fetched."""


class DataError(UserError):
    """The configured data gives no usable images (none found, none decodable, none left to train on)."""


class ModelFileError(UserError):
    """A model file is missing, not a `.keras` file, or not a generator colourise can use."""
