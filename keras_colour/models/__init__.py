"""Network builders, looked up by name (see `registry`)."""

import inspect

from keras_colour import choices
from keras_colour.models import discriminators, generators, perceptual  # noqa: F401  (registers builders)
from keras_colour.models.registry import BACKBONES, DISCRIMINATORS, GENERATORS, lookup

choices.check_registry("GENERATORS", GENERATORS, choices.GENERATORS)
choices.check_registry("DISCRIMINATORS", DISCRIMINATORS, choices.DISCRIMINATORS)
choices.check_registry("BACKBONES", BACKBONES, choices.BACKBONES)


def _call_builder(table, kind, what, image_size, options):
    fn = lookup(table, kind, what)
    parameters = inspect.signature(fn).parameters
    accepted = [p for p in parameters if p != "image_size"]
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())  # `**options`
    unknown = [] if takes_any else sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"Unknown option(s) {unknown} for {what} {kind!r}. Accepted options: {accepted}.")
    return fn(image_size=image_size, **options)


def build_generator(kind, image_size=256, **options):
    """Builds a generator by name: `unet`, `pix2pix` or `gorriz`.

    Args:
        kind: str. A registered generator name.
        image_size: int. Square input size. Defaults to 256.
        **options: the builder's options (`norm`, `spectral_norm`, `base_filters`, ...).

    Returns:
        A functional `keras.Model` from L_n (H, W, 1) to ab_n (H, W, 2) in [-1, 1]
        (or a dict with `ab` and `segmentation` for `separate_decoders`).
    """
    return _call_builder(GENERATORS, kind, "generator", image_size, options)


def build_discriminator(kind, image_size=256, **options):
    """Builds a discriminator by name: `patchgan` or `multiscale`."""
    return _call_builder(DISCRIMINATORS, kind, "discriminator", image_size, options)


def generator_options(model_config):
    """The builder options a `ModelConfig` gives a generator."""
    return dict(
        norm=model_config.norm,
        spectral_norm=model_config.spectral_norm,
        instance_norm=model_config.instance_norm,
        base_filters=model_config.base_filters,
        max_filters=model_config.max_filters,
        num_downsamples=model_config.num_downsamples,
        dropout=model_config.dropout,
        segmentation=model_config.segmentation,
        n_classes=model_config.n_classes,
    )


def discriminator_options(model_config):
    """The builder options a `ModelConfig` gives a discriminator (norms, `base_filters`, `scales`)."""
    return dict(
        norm=model_config.norm,
        spectral_norm=model_config.spectral_norm,
        instance_norm=model_config.instance_norm,
        base_filters=model_config.base_filters,
        scales=model_config.d_scales,
    )


__all__ = [
    "build_generator",
    "build_discriminator",
    "generator_options",
    "discriminator_options",
    "GENERATORS",
    "DISCRIMINATORS",
    "BACKBONES",
]
