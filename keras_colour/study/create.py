"""`keras-colour study create`: a self-contained study folder from run folders."""

import datetime
import json
import os
import secrets

import numpy as np
from PIL import Image

from keras_colour.colourise import colourise_array
from keras_colour.data import resolve_files
from keras_colour.data.images import decode_to_rgb8
from keras_colour.errors import UserError
from keras_colour.io_utils import atomic_write_text
from keras_colour.run_folder import RunFolder, run_labels

GROUND_TRUTH = "ground truth"
MANIFEST = "manifest.json"


def create_study(run_dirs, n_images, output_dir, seed=42, labels=None):
    """Picks `n_images` test images (seeded) and writes, for each, the ground truth and every run's colourisation.

    Images are shown at the size the runs were evaluated (`data.image_size` of the first run): the ground truth
    resized as the evaluation resized it, each run's colourisation of that image joined to its own L. Files get
    random names, so a participant cannot tell the model from a URL.

    Each model is called by its label (`labels`, else the run's `name`, else its folder name where names repeat:
    `keras_colour.run_folder.run_labels`).

    Returns:
        The manifest (also written to `output_dir/manifest.json`).
    """
    runs = [RunFolder(r) for r in run_dirs]
    configs = [r.load_config() for r in runs]
    names = run_labels(run_dirs, [c.name for c in configs], labels)
    if os.path.exists(os.path.join(output_dir, MANIFEST)):
        raise UserError(f"{output_dir!r} already holds a study; choose a new --output folder")
    models = {name: r.load_generator() for name, r in zip(names, runs)}
    first = configs[0]
    test = resolve_files(first.data, first.seed)[1]
    if len(test) < n_images:
        raise UserError(f"--images {n_images}: the test set of {runs[0].path!r} has only {len(test)} images")
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(test), size=n_images, replace=False).tolist())
    size = first.data.image_size
    os.makedirs(os.path.join(output_dir, "images"), exist_ok=True)
    entries = []
    for scene, index in enumerate(chosen):
        rgb = np.asarray(Image.fromarray(decode_to_rgb8(test[index])).resize((size, size), Image.BILINEAR))
        versions = {GROUND_TRUTH: rgb, **{name: colourise_array(model, rgb) for name, model in models.items()}}
        for model, image in versions.items():
            image_id = secrets.token_hex(8)
            Image.fromarray(image).save(os.path.join(output_dir, "images", f"{image_id}.png"))
            entries.append({"id": image_id, "scene": scene, "model": model, "source": test[index]})
    manifest = {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "seed": seed,
        "image_size": size,
        "models": [GROUND_TRUTH, *names],
        "runs": {name: os.path.abspath(r.path) for name, r in zip(names, runs)},
        "scenes": n_images,
        "images": entries,
    }
    atomic_write_text(os.path.join(output_dir, MANIFEST), json.dumps(manifest, indent=2))
    return manifest


def load_manifest(study_dir):
    """The `manifest.json` of a study folder; `UserError` if the folder holds no study."""
    path = os.path.join(study_dir, MANIFEST)
    if not os.path.isfile(path):
        raise UserError(
            f"{study_dir!r} is not a study folder (no {MANIFEST}); make one with `keras-colour study create`"
        )
    with open(path, encoding="utf-8") as f:
        return json.load(f)
