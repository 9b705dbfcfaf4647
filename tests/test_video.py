"""Video colourisation: temporal consistency (numbers), the output's format, the warping error, errors."""

import os
import shutil

import cv2
import numpy as np
import pytest
import skimage.color
import skimage.data

from helpers import QUICKSTART, built_once, cli, one_line_error, sets, tiny_overrides
from keras_colour import metrics
from keras_colour.video import colourise_video, output_path
from keras_colour.video.clips import grayscale, two_shot_clip
from keras_colour.video.evaluate import warping_error, warping_errors
from keras_colour.video.io import VideoError, VideoFile, VideoFileWriter, open_frames

SIZE = (144, 256)  # height, width
SHOT = 12


def write_video(path, frames, fps=24.0):
    writer = VideoFileWriter(str(path), fps, frames[0].shape[1], frames[0].shape[0])
    for frame in frames:
        writer.write(frame)
    return writer.close()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """Pans and zooms over two real photographs with a hard cut; gray input and colour truth as lossless mkv."""

    def build(folder):
        colour_frames, cut = two_shot_clip(skimage.data.astronaut(), skimage.data.coffee(), SIZE, SHOT)
        gray = grayscale(colour_frames)
        return {
            "truth": colour_frames,
            "gray": gray,
            "cut": cut,
            "video": write_video(folder / "film.mkv", gray),
            "reference": write_video(folder / "truth.mkv", colour_frames),
        }

    return built_once(tmp_path_factory, "video_clip", build)


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory, demo_cache):
    """A generator trained briefly on the demo photographs (64x64, narrow): a real, imperfect colouriser."""

    def build(folder):
        out = folder / "run"
        overrides = tiny_overrides(
            **{
                "output_dir": str(out),
                "data.image_size": 64,
                "data.demo_train_crops": 64,
                "model.base_filters": 8,
                "model.max_filters": 32,
                "model.num_downsamples": 5,
                "train.epochs": 2,
            }
        )
        result = cli("train", QUICKSTART, *sets(overrides), "--stage", "train")
        assert result.returncode == 0, result.stderr[-3000:]
        return str(out / "generator.keras")

    return built_once(tmp_path_factory, "video_generator", build)


@pytest.fixture(scope="module")
def outputs(clip, generator_file, tmp_path_factory):
    """The clip colourised frame by frame and with temporal consistency."""

    def build(folder):
        import keras

        model = keras.models.load_model(generator_file, compile=False)
        results = {}
        for temporal in (False, True):
            result = colourise_video(model, clip["video"], str(folder / f"t{int(temporal)}.mkv"), temporal=temporal)
            results[temporal] = (result, list(open_frames(result.output)))
        return results

    return built_once(tmp_path_factory, "video_outputs", build)


def test_temporal_consistency_halves_flicker_keeps_psnr_and_restarts_at_the_cut(clip, outputs):
    (plain, plain_frames), (steady, steady_frames) = outputs[False], outputs[True]
    flicker_plain = warping_error(plain_frames, clip["gray"])
    flicker_steady = warping_error(steady_frames, clip["gray"])
    psnr_plain = metrics.psnr_rgb(np.stack(clip["truth"]), np.stack(plain_frames))
    psnr_steady = metrics.psnr_rgb(np.stack(clip["truth"]), np.stack(steady_frames))
    print(f"warping error {flicker_plain:.5f} -> {flicker_steady:.5f}; PSNR {psnr_plain:.3f} -> {psnr_steady:.3f} dB")
    assert flicker_steady <= 0.5 * flicker_plain
    assert psnr_steady >= psnr_plain - 0.3
    assert steady.scene_cuts == [clip["cut"]] and plain.scene_cuts == []
    cut = clip["cut"]
    np.testing.assert_array_equal(steady_frames[cut], plain_frames[cut])  # nothing carried across the cut
    np.testing.assert_array_equal(steady_frames[0], plain_frames[0])
    assert not np.array_equal(steady_frames[cut + 1], plain_frames[cut + 1])  # and the filter is at work


def test_output_has_the_inputs_frames_size_rate_and_lightness(clip, outputs):
    source = VideoFile(clip["video"])
    result, frames = outputs[True]
    written = VideoFile(result.output)
    assert (written.width, written.height, written.fps) == (source.width, source.height, source.fps) == (256, 144, 24)
    assert len(frames) == written.frame_count == len(clip["gray"]) == result.frames
    for i in (0, 5, clip["cut"], len(frames) - 1):
        lightness_in = skimage.color.rgb2lab(clip["gray"][i])[..., 0]
        lightness_out = skimage.color.rgb2lab(frames[i])[..., 0]
        assert np.abs(lightness_out - lightness_in).max() <= 0.5
        assert np.abs(skimage.color.rgb2lab(frames[i])[..., 1:]).mean() > 1.0  # coloured


def test_warping_error_measures_flicker():
    photo = skimage.data.astronaut()[100:244, 100:356]
    moving = [np.roll(photo, 2 * t, axis=1) for t in range(6)]
    steady = warping_errors(moving)
    hsv = skimage.color.rgb2hsv(photo)
    flicker = []
    for t in range(len(moving)):
        shifted = np.roll(hsv, 2 * t, axis=1).copy()
        shifted[..., 0] = (shifted[..., 0] + 0.08 * (t % 2)) % 1.0  # hue jumps every other frame
        flicker.append((skimage.color.hsv2rgb(shifted) * 255).round().astype(np.uint8))
    flickering = warping_errors(flicker, moving)
    assert len(steady) == 5 and max(steady) < 2e-3
    assert min(flickering) > 5 * max(steady)
    assert warping_errors([photo, photo]) == [0.0]


def test_frame_folder_in_frame_folder_out_with_temporal_on(clip, generator_file, tmp_path):
    frames = tmp_path / "shot"
    frames.mkdir()
    for i, frame in enumerate(clip["gray"][:6]):
        cv2.imwrite(str(frames / f"f{i + 1}.png"), frame)  # f1 .. f6: natural order, not f1 f10 f2
    result = cli("colourise", "--model", generator_file, "--frames", frames, "--output", tmp_path / "o")
    assert result.returncode == 0, result.stderr[-2000:]
    written = sorted(os.listdir(tmp_path / "o" / "shot"))
    assert written == [f"f{i}.png" for i in range(1, 7)]
    assert "Colourised 6 frames" in result.stdout and "temporal on" in result.stdout


def test_odd_size_colour_source_mp4_with_audio(generator_file, tmp_path):
    from keras_colour.video.io import ffmpeg_executable, has_audio

    ffmpeg = ffmpeg_executable()
    assert ffmpeg, "the test extras install imageio-ffmpeg"
    photo = skimage.data.chelsea()
    frames = [np.ascontiguousarray(np.roll(photo, 3 * t, axis=1)[:61, :97]) for t in range(8)]
    silent = write_video(tmp_path / "silent.mp4", frames, fps=12.5)
    source = tmp_path / "cat.mp4"
    command = [ffmpeg, "-loglevel", "error", "-i", silent, "-f", "lavfi", "-i", "sine=frequency=440:duration=1"]
    assert (
        os.system(" ".join(map(str, command + ["-map", "0:v", "-map", "1:a", "-c:v", "copy", "-shortest", source])))
        == 0
    )
    result = cli("colourise", "--model", generator_file, source, "--output", tmp_path / "o", "--no-temporal")
    assert result.returncode == 0, result.stderr[-2000:]
    out = VideoFile(str(tmp_path / "o" / "cat.mp4"))
    assert (out.width, out.height, out.fps, out.frame_count) == (97, 61, 12.5, 8)
    assert has_audio(out.path, ffmpeg) and "audio copied" in result.stdout


def test_without_ffmpeg_audio_is_not_copied_and_it_says_so(clip, generator_file, tmp_path, monkeypatch):
    import keras

    from keras_colour.video import io

    monkeypatch.setattr(io.shutil, "which", lambda name: None)
    monkeypatch.setattr(io, "ffmpeg_executable", lambda: None)
    assert "no ffmpeg found" in io.copy_audio(clip["video"], clip["video"])
    model = keras.models.load_model(generator_file, compile=False)
    with pytest.raises(VideoError, match="even sizes only"):
        io.VideoFileWriter(str(tmp_path / "odd.mkv"), 25, 97, 61)
    short = write_video(tmp_path / "short.mkv", clip["gray"][:3])
    result = colourise_video(model, short, str(tmp_path / "o.mkv"), progress=False)
    assert result.frames == 3 and result.audio.startswith("no audio copied: no ffmpeg found")


def test_a_cut_short_video_keeps_its_finished_frames_and_says_so(clip, generator_file, tmp_path):
    data = open(clip["video"], "rb").read()
    broken = tmp_path / "broken.mkv"
    broken.write_bytes(data[: int(len(data) * 0.6)])
    result = cli("colourise", "--model", generator_file, broken, "--output", tmp_path / "o")
    partial = tmp_path / "o" / "broken.partial.mkv"
    one_line_error(result, "broken.mkv", "ends after", "colourised frames are kept in", str(partial))
    kept = list(VideoFile(str(partial)))
    assert 0 < len(kept) < len(clip["gray"])
    assert not (tmp_path / "o" / "broken.mkv").exists()


def test_a_file_that_is_not_a_video_is_one_line(generator_file, tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a film")
    one_line_error(cli("colourise", "--model", generator_file, fake, "--output", tmp_path / "o"), "cannot open")
    with pytest.raises(VideoError, match="would overwrite the input"):
        output_path(str(fake), str(tmp_path))


def test_evaluate_video_prints_warping_error_and_psnr(clip, outputs, tmp_path):
    result, frames = outputs[True]
    csv_path = tmp_path / "frames.csv"
    run = cli("evaluate-video", result.output, "--input", clip["video"], "--reference", clip["reference"],
              "--csv", csv_path)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    expected = warping_error(frames, clip["gray"])
    assert f"warping error {expected:.6f}" in run.stdout
    rows = csv_path.read_text().splitlines()
    assert len(rows) == 1 + len(frames)
    psnr_first = metrics.psnr_rgb(clip["truth"][0], frames[0])
    assert abs(float(rows[1].split(",")[2]) - psnr_first) < 1e-9
    other = write_video(tmp_path / "other.mkv", [f[:72, :128] for f in clip["gray"]])
    one_line_error(cli("evaluate-video", result.output, "--input", other), "72", "must match")
    shorter = write_video(tmp_path / "shorter.mkv", clip["truth"][:5])
    one_line_error(cli("evaluate-video", result.output, "--reference", shorter), "different frame counts")


def test_bfloat16_keeps_ab_within_one_lab_unit_on_the_clip(clip, generator_file):
    import keras

    from keras_colour.colourise import predict_frames_ab
    from keras_colour.engines import TensorFlowEngine
    from keras_colour.precision import Precision, bfloat16_generator, bfloat16_units, p99_ab_difference

    model = keras.models.load_model(generator_file, compile=False)
    frames = clip["gray"][::3]
    reference = np.stack(predict_frames_ab(model, frames))
    fast = np.stack(predict_frames_ab(TensorFlowEngine(bfloat16_generator(model), low_resolution=False), frames))
    assert p99_ab_difference(reference, fast) <= 1.0
    assert not np.array_equal(reference, fast)  # it did compute in bfloat16
    auto = Precision(model, "auto")
    auto.predict(lambda m: predict_frames_ab(m, frames))
    assert auto.used == ("bfloat16" if bfloat16_units() else "float32")


def test_video_through_the_readme_python_api_matches_the_command_line(clip, generator_file, outputs, tmp_path):
    result = cli("colourise", "--model", generator_file, clip["video"], "--output", tmp_path / "o")
    assert result.returncode == 0, result.stderr[-2000:]
    from_cli = list(open_frames(str(tmp_path / "o" / "film.mkv")))
    for a, b in zip(from_cli, outputs[True][1]):
        np.testing.assert_array_equal(a, b)


def test_ctrl_c_keeps_the_frames_done(clip, generator_file, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from helpers import ROOT

    source = write_video(tmp_path / "long.mkv", clip["gray"] * 25)  # 600 frames: long enough to interrupt
    partial = tmp_path / "o" / "long.partial.mkv"
    command = [sys.executable, "-m", "keras_colour.cli", "colourise", "--model", generator_file, source,
               "--output", tmp_path / "o", "--batch-size", "2"]  # fmt: skip
    proc = subprocess.Popen(list(map(str, command)), stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.time() + 300
    while time.time() < deadline and not (partial.exists() and partial.stat().st_size > 100_000):
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr and f"are kept in {partial}" in stderr
    kept = list(VideoFile(str(partial)))
    assert 0 < len(kept) < 25 * len(clip["gray"])


def test_keyframes_predict_every_other_frame_and_a_cut_between_them_on_its_own(clip, generator_file, tmp_path,
                                                                               monkeypatch):  # fmt: skip
    """Without the clip's first frame the cut falls on an odd frame, one the model skips: it is predicted alone."""
    import keras

    import keras_colour.video.colourise as video_colourise

    model = keras.models.load_model(generator_file, compile=False)
    source = write_video(tmp_path / "odd.mkv", clip["gray"][1:])
    cut = clip["cut"] - 1
    assert cut % 2 == 1
    predicted = []
    real = video_colourise.predict_frames_ab
    monkeypatch.setattr(video_colourise, "predict_frames_ab", lambda m, f: predicted.append(len(f)) or real(m, f))
    runs = {}
    for name, options in (("plain", {"temporal": False}), ("every", {"keyframe_interval": 1}), ("half", {})):
        predicted.clear()
        result = colourise_video(model, source, str(tmp_path / f"{name}.mkv"), precision="float32", progress=False,
                                 batch_size=4, **options)  # fmt: skip
        runs[name] = (result, sum(predicted), list(open_frames(result.output)))
    frames = len(clip["gray"]) - 1
    assert runs["plain"][1] == runs["every"][1] == frames
    assert runs["half"][1] == (frames + 1) // 2 + 1  # the even frames, and the cut
    assert runs["half"][0].scene_cuts == runs["every"][0].scene_cuts == [cut]
    plain, half = runs["plain"][2], runs["half"][2]
    # Nothing carried across the cut: the frame-by-frame result, up to rounding (the cut ran as a batch of one)
    difference = np.abs(half[cut].astype(int) - plain[cut].astype(int))
    assert difference.max() <= 1 and difference.mean() < 0.01, (difference.max(), difference.mean())
    flicker_plain, flicker_half = (
        warping_error(plain, clip["gray"][1:]),
        warping_error(half, clip["gray"][1:]),
    )
    psnr_plain = metrics.psnr_rgb(np.stack(clip["truth"][1:]), np.stack(plain))
    psnr_half = metrics.psnr_rgb(np.stack(clip["truth"][1:]), np.stack(half))
    print(f"every other frame: warping error {flicker_plain:.5f} -> {flicker_half:.5f}; "
          f"PSNR {psnr_plain:.3f} -> {psnr_half:.3f}")  # fmt: skip
    assert flicker_half <= 0.5 * flicker_plain and psnr_half >= psnr_plain - 0.3
    for i in (1, cut + 2, frames - 1):  # skipped frames keep their own L
        lightness_in = skimage.color.rgb2lab(clip["gray"][1 + i])[..., 0]
        assert np.abs(skimage.color.rgb2lab(half[i])[..., 0] - lightness_in).max() <= 0.5


def test_a_folders_videos_are_colourised_with_its_photographs(clip, generator_file, tmp_path):
    folder = tmp_path / "archive"
    (folder / "reel").mkdir(parents=True)
    shutil.copy(clip["video"], folder / "reel" / "film.mkv")
    cv2.imwrite(str(folder / "still.png"), clip["gray"][0])
    # An output folder that is the input folder stops the run before any video is written.
    result = cli("colourise", "--model", generator_file, folder, "--output", folder, "--container", "mp4")
    assert result.returncode == 2 and "is the input folder" in result.stderr, result.stderr[-2000:]
    assert sorted(os.listdir(folder / "reel")) == ["film.mkv"] and "Traceback" not in result.stderr
    result = cli("colourise", "--model", generator_file, folder, "--output", tmp_path / "o")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Colourised 1 image(s)" in result.stdout and f"Colourised {len(clip['gray'])} frames" in result.stdout
    assert sorted(os.listdir(tmp_path / "o")) == ["reel", "still.png"]
    assert len(list(open_frames(str(tmp_path / "o" / "reel" / "film.mkv")))) == len(clip["gray"])
    # Only videos: no "no image files" error. Two videos that would land on one output: refused before writing.
    shutil.copy(clip["video"], folder / "reel" / "film.mp4")
    os.remove(folder / "still.png")
    result = cli("colourise", "--model", generator_file, folder, "--output", tmp_path / "p", "--container", "mkv")
    assert result.returncode == 2 and "would both be written to" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "p").exists()
    os.remove(folder / "reel" / "film.mp4")
    result = cli("colourise", "--model", generator_file, folder, "--output", tmp_path / "p")
    assert result.returncode == 0 and os.listdir(tmp_path / "p") == ["reel"], result.stderr[-2000:]
