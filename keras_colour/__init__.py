"""keras-colour: GAN-based image colourisation in Keras 3 (BBC R&D / Tarres 2021)."""

__version__ = "0.1.0"

from keras_colour.quiet import quiet_tensorflow_import  # noqa: E402 (TensorFlow-free)

quiet_tensorflow_import()  # TensorFlow's C++ start-up lines stay out of notebooks and scripts


def __getattr__(name):
    # Lazy: `import keras_colour` stays cheap (no TensorFlow) for the CLI and configs.
    if name in ("ColourGAN", "build_trainer"):
        from keras_colour import trainer  # noqa: PLC0415  (lazy: `import keras_colour` stays TensorFlow-free)

        return getattr(trainer, name)
    raise AttributeError(f"module 'keras_colour' has no attribute {name!r}")


__all__ = ["ColourGAN", "build_trainer", "__version__"]
