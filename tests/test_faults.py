"""The fault catalogue: each case through the real command line, in a subprocess.

Each asserts the exit code, a one-line `keras-colour: error: ...` naming the file or key (no traceback), and that
every file which must survive still has its original checksum.
"""

import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from helpers import QUICKSTART, ROOT, built_once, cli, copy_of_run, one_line_error, sets, tiny_overrides

pytestmark = pytest.mark.slow


def checksums(folder):
    out = {}
    for dirpath, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, folder)] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return out


def image_folder(root, classes=2, per_class=6, size=48):
    import skimage.data

    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]
    for c in range(classes):
        os.makedirs(root / f"class{c}", exist_ok=True)
        for i in range(per_class):
            photo = photos[(c + i) % 3]
            y, x = 20 * i, 30 * c
            Image.fromarray(photo[y : y + 200, x : x + 200]).resize((size, size)).save(root / f"class{c}" / f"{i}.jpg")
    return root


def folder_overrides(data, out, **extra):
    return tiny_overrides(
        **{"data.kind": "folder", "data.train": str(data), "data.test_per_class": 1, "output_dir": str(out), **extra}
    )


@pytest.fixture(scope="module")
def generator_file(quickstart_run):
    """The generator.keras of the session's tiny quick-start run (for the colourise cases)."""
    return quickstart_run / "generator.keras"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, demo_cache):
    """A finished 1-epoch run on a small folder dataset, and the overrides that made it (built once a session)."""

    def build(base):
        data = image_folder(base / "data")
        out = base / "run"
        overrides = folder_overrides(data, out, **{"train.sample_images": 2})
        result = cli("train", QUICKSTART, *sets(overrides), "--stage", "train")
        assert result.returncode == 0, result.stderr[-3000:]
        return out, overrides

    return built_once(tmp_path_factory, "faults_trained_run", build)


def copy_run(trained_run, tmp_path):
    out, overrides = trained_run
    target = copy_of_run(out, tmp_path / "run")
    overrides = [o if not o.startswith("output_dir=") else f"output_dir={target}" for o in overrides]
    return target, overrides


# -- 1. colourise never writes onto an input, names colliding outputs apart, fails loudly ----------------------


def _photo(path, size=(40, 30), mode="RGB"):
    import skimage.data

    image = Image.fromarray(skimage.data.coffee()[:300, :400]).resize(size)
    image.convert(mode).save(path)
    return path


def test_colourise_same_stem_inputs_get_distinct_outputs(generator_file, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    _photo(d / "a.jpg")
    _photo(d / "a.png")
    before = checksums(d)
    result = cli("colourise", "--model", generator_file, d / "a.jpg", d / "a.png", "--output", d)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Colourised 2 image(s)" in result.stdout and "a_jpg.png" in result.stderr
    after = checksums(d)
    assert {k: after[k] for k in before} == before  # the inputs are untouched
    assert {"a_jpg.png", "a_png.png"} <= set(after)


def test_colourise_refuses_to_write_onto_an_input(generator_file, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    _photo(d / "x.png")
    before = checksums(d)
    error = one_line_error(cli("colourise", "--model", generator_file, d / "x.png", "--output", d), "x.png",
                           "overwrite an input")  # fmt: skip
    assert "--output" in error
    assert checksums(d) == before


def test_colourise_into_its_own_input_folder_is_refused_and_a_folder_inside_it_never_read(generator_file, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.jpg", "b.png"):
        _photo(photos / name)
    before = checksums(photos)
    one_line_error(cli("colourise", "--model", generator_file, photos, "--output", photos), "is the input folder")
    assert checksums(photos) == before  # nothing written
    out = photos / "out"
    for _ in range(2):  # twice: the second run must not take the first run's outputs as inputs
        result = cli("colourise", "--model", generator_file, photos, "--output", out)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "Colourised 2 image(s)" in result.stdout
    assert sorted(p.name for p in out.rglob("*")) == ["a.png", "b.png"]
    assert sorted(p.relative_to(photos).as_posix() for p in photos.rglob("*")) == [
        "a.jpg", "b.png", "out", "out/a.png", "out/b.png"]  # fmt: skip


def test_colourise_write_failure_is_an_error(generator_file, tmp_path):
    _photo(tmp_path / "p.jpg")
    (tmp_path / "blocker").write_text("a file where the output folder should be")
    one_line_error(
        cli("colourise", "--model", generator_file, tmp_path / "p.jpg", "--output", tmp_path / "blocker" / "out"),
        "could not write",
        "p.png",
    )


# -- 2. output folders never overlap the data; --overwrite deletes only a run -------------------------------


@pytest.mark.parametrize("where", ["same", "inside"])
def test_output_dir_overlapping_the_data_is_refused(tmp_path, where):
    data = image_folder(tmp_path / "data")
    before = checksums(data)
    out = data if where == "same" else data / "class0" / "run"
    result = cli("train", QUICKSTART, *sets(folder_overrides(data, out)), "--overwrite")
    one_line_error(result, "overlaps data.train", str(data))
    assert checksums(data) == before


def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path):
    data = image_folder(tmp_path / "data")
    out = tmp_path / "thesis_notes"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    one_line_error(
        cli("train", QUICKSTART, *sets(folder_overrides(data, out)), "--overwrite"), "not a keras-colour run"
    )
    assert (out / "notes.txt").read_text() == "precious"


# -- 3. non-finite losses: nothing non-finite is saved; the last good checkpoint stays the latest -----------


def test_nan_in_a_later_epoch_keeps_the_last_good_checkpoint(trained_run, tmp_path):
    run, overrides = copy_run(trained_run, tmp_path)
    kept = checksums(run)
    result = cli(
        "train", QUICKSTART, *sets(overrides + ["train.epochs=2", "train.g_learning_rate=1.0e30",
                                                "train.d_learning_rate=1.0e30"]), "--resume", "--stage", "train",
    )  # fmt: skip
    one_line_error(result, "became", "checkpoint is intact")
    state = json.loads((run / "state.json").read_text())
    assert state["completed_epochs"] == 1
    assert checksums(run)["generator.keras"] == kept["generator.keras"]
    assert (run / "checkpoints" / "checkpoint").read_text().count("ckpt-1") >= 1
    assert "ckpt-2" not in (run / "checkpoints" / "checkpoint").read_text()


def test_metrics_json_refuses_non_finite_values(tmp_path):
    from keras_colour.errors import UserError
    from keras_colour.run_folder import RunFolder

    with pytest.raises(UserError, match="non-finite psnr"):
        RunFolder(tmp_path).write_metrics({"psnr": float("nan"), "model": "x"})
    assert not (tmp_path / "metrics.json").exists()


# -- 4. --resume with a changed config ---------------------------------------------------------------------


def test_resume_with_a_changed_architecture_names_the_keys_and_touches_nothing(trained_run, tmp_path):
    run, overrides = copy_run(trained_run, tmp_path)
    before = checksums(run)
    result = cli("train", QUICKSTART, *sets(overrides + ["model.base_filters=8", "loss.adversarial=none",
                                                          "model.discriminator=none"]), "--resume")  # fmt: skip
    one_line_error(result, "model.base_filters (4 -> 8)", "model.discriminator", "--resume may change only")
    after = checksums(run)
    assert {k: v for k, v in after.items() if k != ".lock"} == {k: v for k, v in before.items() if k != ".lock"}


def test_resume_applies_a_new_learning_rate_and_more_epochs(trained_run, tmp_path):
    run, overrides = copy_run(trained_run, tmp_path)
    result = cli(
        "train", QUICKSTART, *sets(overrides + ["train.epochs=2", "train.g_learning_rate=1.0e-5"]), "--resume",
        "--stage", "train",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(run / "checkpoints"))
    names = [n for n in reader.get_variable_to_shape_map() if "g_optimizer" in n and "learning_rate" in n]
    assert names and reader.get_tensor(names[0]) == pytest.approx(1e-5)
    assert json.loads((run / "state.json").read_text())["completed_epochs"] == 2


# -- 5. one writer at a time -------------------------------------------------------------------------------


def test_a_locked_run_folder_is_refused_and_a_stale_lock_taken_over(trained_run, tmp_path):
    run, overrides = copy_run(trained_run, tmp_path)
    with open(run / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.write("4242")
        lock.flush()
        one_line_error(cli("train", QUICKSTART, *sets(overrides + ["train.epochs=2"]), "--resume"), "another", "4242")
    # the lock file is still there, with a dead pid in it, but no process holds it: taken over
    result = cli("train", QUICKSTART, *sets(overrides + ["train.epochs=2"]), "--resume", "--stage", "train")
    assert result.returncode == 0, result.stderr[-3000:]


# -- 6. a kill right after a checkpoint, a full disk: consistent history, no stale temporaries --------------


def test_resume_aligns_history_and_samples_with_the_checkpoint_and_removes_temporaries(trained_run, tmp_path):
    run, overrides = copy_run(trained_run, tmp_path)
    # As if killed after epoch 2's history row and sample were written but before its checkpoint, and after a
    # full disk interrupted a checkpoint and an export.
    with open(run / "history.csv", "a") as f:
        f.write("2" + ",0.5" * (len(open(run / "history.csv").readline().split(",")) - 1) + "\n")
    Image.new("RGB", (4, 4)).save(run / "samples" / "epoch_002.png")
    (run / "generator.tmp-999.keras").write_bytes(b"half")
    (run / "checkpoints" / "ckpt-2_temp").mkdir()
    result = cli("train", QUICKSTART, *sets(overrides + ["train.epochs=2"]), "--resume", "--stage", "train")
    assert result.returncode == 0, result.stderr[-3000:]
    epochs = [line.split(",")[0] for line in (run / "history.csv").read_text().splitlines()[1:]]
    assert epochs == ["1", "2"]  # counted from 1, as samples/epoch_001.png and the log are
    assert Image.open(run / "samples" / "epoch_002.png").size != (4, 4)  # the real one, written again
    assert not (run / "generator.tmp-999.keras").exists() and not (run / "checkpoints" / "ckpt-2_temp").exists()


# -- 7-10. data: link loops, EXIF, names that are not UTF-8, alpha ---------------------------------------------


def test_symlink_loop_visits_each_file_once(tmp_path, caplog):
    from keras_colour.data import list_images

    data = image_folder(tmp_path / "data", classes=3, per_class=5)
    os.symlink("..", data / "class0" / "loop")
    paths, labels = list_images(str(data))
    assert len(paths) == 15 and sorted(set(labels)) == ["class0", "class1", "class2"]
    assert "link loop" in caplog.text


def test_exif_orientation_is_applied_in_training_and_colourise(generator_file, tmp_path):
    from keras_colour.data.images import decode_to_rgb8

    photo = Image.open(_photo(tmp_path / "src.png", size=(60, 40)))  # landscape pixels
    exif = photo.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display": a portrait photo stored sideways
    photo.save(tmp_path / "portrait.jpg", exif=exif)
    assert decode_to_rgb8(str(tmp_path / "portrait.jpg")).shape[:2] == (60, 40)
    result = cli("colourise", "--model", generator_file, tmp_path / "portrait.jpg", "--output", tmp_path / "out")
    assert result.returncode == 0, result.stderr[-2000:]
    assert Image.open(tmp_path / "out" / "portrait.png").size == (40, 60)  # upright: width 40, height 60


def test_a_name_that_is_not_utf8_is_skipped_with_its_name(tmp_path, caplog):
    from keras_colour.data import list_images

    data = image_folder(tmp_path / "data", classes=1, per_class=3)
    bad = os.path.join(os.fsencode(data / "class0"), b"caf\xe9.jpg")
    with open(bad, "wb") as f:
        f.write((data / "class0" / "0.jpg").read_bytes())
    paths, _ = list_images(str(data))
    assert len(paths) == 3
    assert "caf" in caplog.text and "not valid UTF-8" in caplog.text


def test_colourise_keeps_the_alpha_channel(generator_file, tmp_path):
    rgba = np.zeros((30, 40, 4), np.uint8)
    rgba[..., :3] = 128
    rgba[..., 3] = np.linspace(0, 255, 40).astype(np.uint8)[None, :]
    Image.fromarray(rgba, "RGBA").save(tmp_path / "icon.png")
    result = cli("colourise", "--model", generator_file, tmp_path / "icon.png", "--output", tmp_path / "out")
    assert result.returncode == 0, result.stderr[-2000:]
    out = np.asarray(Image.open(tmp_path / "out" / "icon.png"))
    assert out.shape == (30, 40, 4)
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])


# -- 11 and ordinary mistakes: one line, exit 2, nothing left that blocks the retry ---------------------------


@pytest.mark.parametrize(
    "override, needle",
    [
        ("train.g_learning_rate=.inf", "train.g_learning_rate"),
        ("loss.colour_weight=.nan", "loss.colour_weight"),
        ("data.image_size=48", "data.image_size"),
        ("model.norm=[unclosed", "model.norm"),
    ],
    ids=["inf", "nan", "image-size", "bad-yaml"],
)
def test_bad_values_are_one_line_errors_in_train_and_check(tmp_path, override, needle):
    out = tmp_path / "run"
    one_line_error(cli("train", QUICKSTART, "--set", f"output_dir={out}", "--set", override), needle)
    assert not out.exists()
    one_line_error(cli("check", QUICKSTART, "--set", override), needle, code=1)


def test_duplicate_yaml_keys_are_named(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("train:\n  epochs: 3\n  epochs: 4\n")
    one_line_error(cli("train", path), "dup.yaml", "duplicate key 'epochs'")


@pytest.mark.parametrize("case", ["no-images", "all-broken", "too-few-for-test", "output-is-a-file", "unwritable"])
def test_ordinary_mistakes_in_train(tmp_path, case):
    data = tmp_path / "data"
    out = tmp_path / "run"
    (data / "cls").mkdir(parents=True)
    needles = ()
    if case == "no-images":
        needles = ("no image files found", str(data))
    elif case == "all-broken":
        for i in range(6):
            (data / "cls" / f"{i}.jpg").write_text("not a jpeg")
        needles = ("none of the 5 training images could be decoded", "cls")
    elif case == "too-few-for-test":
        image_folder(data, classes=1, per_class=3)
        needles = ("data.test_per_class=10", "lower data.test_per_class")
    else:
        image_folder(data)
        if case == "output-is-a-file":
            out.write_text("a file")
            needles = ("is a file", str(out))
        else:
            out = "/proc/keras-colour-run"
            needles = ("cannot write to output_dir", "/proc/keras-colour-run")
    overrides = folder_overrides(data, out, **({"data.test_per_class": 10} if case == "too-few-for-test" else {}))
    one_line_error(cli("train", QUICKSTART, *sets(overrides)), *needles)
    if case == "all-broken":  # the retry after fixing the data is not blocked by anything the failure left
        for i in range(6):
            (data / "cls" / f"{i}.jpg").unlink()
        image_folder(data)
        result = cli("train", QUICKSTART, *sets(overrides), "--stage", "train")
        assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize("case", ["missing", "not-keras", "rgb-input", "several-outputs", "not-a-model"])
def test_bad_model_files_in_colourise(tmp_path, case):
    import keras

    _photo(tmp_path / "p.jpg")
    model = tmp_path / "model.keras"
    if case == "not-keras":
        model = tmp_path / "model.h5"
        model.write_bytes(b"\x89HDF")
        needles = ("not a .keras model file", "model.h5")
    elif case == "missing":
        needles = ("not found", "model.keras")
    elif case == "not-a-model":
        model.write_text("hello")
        needles = ("could not load", "model.keras")
    else:
        channels = 3 if case == "rgb-input" else 1
        x = keras.Input((32, 32, channels))
        y = keras.layers.Conv2D(2, 1)(x)
        outputs = [y, y] if case == "several-outputs" else y
        keras.Model(x, outputs).save(model)
        needles = ("(None, 32, 32, 3)",) if case == "rgb-input" else ("several outputs",)
    one_line_error(cli("colourise", "--model", model, tmp_path / "p.jpg", "--output", tmp_path / "o"), *needles)


def test_ctrl_c_says_how_to_continue(tmp_path, demo_cache):
    out = tmp_path / "run"
    overrides = tiny_overrides(**{"output_dir": str(out), "train.epochs": 50, "train.steps_per_epoch": 10})
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "keras_colour.cli", "train", QUICKSTART, *sets(overrides)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
    )  # fmt: skip
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "state.json").exists():
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    done = json.loads((out / "state.json").read_text())["completed_epochs"]
    assert 1 <= done < 50
    assert f"interrupted after epoch {done}; continue with --resume" in stderr
    history = (out / "history.csv").read_text().splitlines()
    assert len(history) == 1 + done  # the cut-short epoch left no row


def test_the_command_line_is_quiet_by_default(generator_file, tmp_path):
    _photo(tmp_path / "p.jpg")
    result = cli("colourise", "--model", generator_file, tmp_path / "p.jpg", "--output", tmp_path / "o")
    assert result.returncode == 0
    for noise in ("absl::InitializeLog", "oneDNN", "cuda", "cuInit", "cpu_feature_guard"):
        assert noise not in result.stderr, noise
    version = cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("keras-colour ")
