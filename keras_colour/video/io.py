"""Reading and writing video files (OpenCV) and folders of numbered frames; audio copied with ffmpeg.

Writers never leave half a file under the final name: a video is written to `NAME.partial.EXT` and renamed
when complete. When the source ends early (a truncated file) or the run is interrupted, the partial file is
kept, playable up to the last finished frame, and the error says where it is.
"""

import fractions
import logging
import os
import re
import shutil
import subprocess

import cv2
import numpy as np
from PIL import Image

from keras_colour.data.images import IMAGE_EXTENSIONS, decode_to_rgb8
from keras_colour.errors import UserError
from keras_colour.io_utils import atomic_path

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm")
# Lossless FFV1 where the container takes it (an archive master keeps every pixel); for .mp4/.mov H.264
# through ffmpeg, or MPEG-4 Part 2 through OpenCV's own FFmpeg without one (both lossy: use .mkv to keep L).
OPENCV_CODECS = {".mkv": "FFV1", ".avi": "FFV1", ".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v"}
PARTIAL = ".partial"


class VideoError(UserError):
    """A video cannot be opened, read to its end, or written."""


def is_video(path):
    """True if `path` is a file with a video extension (`VIDEO_EXTENSIONS`)."""
    return os.path.isfile(path) and os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def _natural_key(name):
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def is_frame_folder(path):
    """A folder whose images are numbered frames (`frame_0001.png`, `0002.jpg`, ...), at least two."""
    if not os.path.isdir(path):
        return False
    names = [n for n in os.listdir(path) if os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS]
    return len(names) >= 2 and all(re.search(r"\d", n) for n in names)


class VideoFile:
    """Frames of a video file as RGB uint8 arrays, with its size, frame rate and declared frame count."""

    def __init__(self, path):
        self.path = path
        self._capture = cv2.VideoCapture(path)
        if not self._capture.isOpened():
            raise VideoError(f"cannot open {path!r} as a video (OpenCV reads mp4, avi, mov, mkv, webm)")
        self.fps = float(self._capture.get(cv2.CAP_PROP_FPS)) or 25.0
        self.width = int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.frame_count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frames_read = 0
        if self.width <= 0 or self.height <= 0:
            raise VideoError(f"{path!r} has no readable video stream")

    @property
    def names(self):
        return None

    def __iter__(self):
        while True:
            ok, frame = self._capture.read()
            if not ok:
                break
            self.frames_read += 1
            if frame.ndim == 2:
                frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        self._capture.release()

    @property
    def truncated(self):
        """True when fewer frames were read than the container declares (a cut-short file)."""
        return self.frame_count > 0 and self.frames_read < self.frame_count


class FrameFolder:
    """A folder of numbered image frames, in natural order (`2.png` before `10.png`), of one size."""

    def __init__(self, path, fps=25.0):
        self.path = path
        self.fps = fps
        names = [n for n in os.listdir(path) if os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS]
        self._names = sorted(names, key=_natural_key)
        if not self._names:
            raise VideoError(f"no image frames in {path!r}")
        first = decode_to_rgb8(os.path.join(path, self._names[0]))
        self.height, self.width = first.shape[:2]
        self.frame_count = len(self._names)
        self.frames_read = 0

    @property
    def names(self):
        return self._names

    def __iter__(self):
        for name in self._names:
            try:
                frame = decode_to_rgb8(os.path.join(self.path, name))
            except Exception as e:
                raise VideoError(f"frame {name!r} in {self.path!r} cannot be read ({e})") from None
            if frame.shape[:2] != (self.height, self.width):
                raise VideoError(
                    f"frame {name!r} is {frame.shape[1]}x{frame.shape[0]}, the first frame "
                    f"{self.width}x{self.height}: all frames of a sequence must have one size"
                )
            self.frames_read += 1
            yield frame

    truncated = False


def open_frames(path, fps=25.0):
    """A `VideoFile` or a `FrameFolder` for `path`."""
    return FrameFolder(path, fps) if os.path.isdir(path) else VideoFile(path)


class VideoFileWriter:
    """Writes RGB uint8 frames to `path` through `NAME.partial.EXT`; `close()` renames it into place.

    With an ffmpeg executable (`ffmpeg_executable`) frames are piped to it: lossless FFV1 for .mkv/.avi,
    H.264 (CRF 16) for .mp4/.m4v/.mov, any frame size. Without one OpenCV writes FFV1 or MPEG-4 Part 2, which
    needs even frame sizes (OpenCV would silently drop the odd row or column, so an odd size is refused).
    """

    def __init__(self, path, fps, width, height):
        root, ext = os.path.splitext(path)
        ext = ext.lower()
        if ext not in OPENCV_CODECS:
            raise VideoError(f"cannot write {ext!r} videos: give an output ending in {', '.join(OPENCV_CODECS)}")
        self.path, self.partial = path, f"{root}{PARTIAL}{ext}"
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.frames_written = 0
        ffmpeg = ffmpeg_executable()
        self._pipe = self._writer = None
        if ffmpeg:
            rate = fractions.Fraction(fps).limit_denominator(1001)
            command = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24"]
            command += ["-s", f"{width}x{height}", "-r", f"{rate.numerator}/{rate.denominator}", "-i", "-"]
            if OPENCV_CODECS[ext] == "FFV1":
                command += ["-c:v", "ffv1", "-level", "3"]
            else:  # 4:2:0 needs even sizes; 4:4:4 plays in fewer players but keeps any size
                chroma = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
                command += ["-c:v", "libx264", "-crf", "16", "-preset", "fast", "-pix_fmt", chroma]
            self._pipe = subprocess.Popen(command + [self.partial], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
            self.backend = "ffmpeg"
            return
        if width % 2 or height % 2:
            raise VideoError(
                f"{width}x{height} frames: OpenCV writes even sizes only; install ffmpeg "
                '(pip install -e ".[video]") to keep the odd size, or give frames (--frames)'
            )
        self._writer = cv2.VideoWriter(self.partial, cv2.VideoWriter_fourcc(*OPENCV_CODECS[ext]), fps, (width, height))
        if not self._writer.isOpened():
            raise VideoError(f"OpenCV cannot write {OPENCV_CODECS[ext]} video to {self.partial!r}")
        self.backend = "opencv"

    def write(self, rgb8):
        if self._pipe is not None:
            try:
                self._pipe.stdin.write(np.ascontiguousarray(rgb8, np.uint8).tobytes())
            except BrokenPipeError:
                raise VideoError(f"ffmpeg stopped writing {self.partial!r}: {self._finish()}") from None
        else:
            self._writer.write(np.ascontiguousarray(rgb8[..., ::-1]))
        self.frames_written += 1

    def _finish(self):
        """Ends the encoder; returns ffmpeg's error text ('' when it succeeded)."""
        if self._pipe is None:
            self._writer.release()
            return ""
        try:
            self._pipe.stdin.close()
        except BrokenPipeError:
            pass
        error = self._pipe.stderr.read().decode(errors="replace").strip()
        return error if self._pipe.wait() != 0 else ""

    def abort(self):
        """Keeps what was written as `NAME.partial.EXT` (playable up to the last frame) and returns its path."""
        self._finish()
        return self.partial

    def close(self):
        error = self._finish()
        if error:
            raise VideoError(f"ffmpeg could not write {self.partial!r}: {error.splitlines()[-1]}")
        os.replace(self.partial, self.path)
        return self.path


class FrameFolderWriter:
    """Writes frames as lossless PNG files named after the input frames, each atomically."""

    def __init__(self, path, names):
        self.path, self.partial, self._names = path, path, names
        os.makedirs(path, exist_ok=True)
        self.frames_written = 0

    def write(self, rgb8):
        target = os.path.join(self.path, os.path.splitext(self._names[self.frames_written])[0] + ".png")
        with atomic_path(target) as tmp:
            Image.fromarray(rgb8).save(tmp, format="PNG", compress_level=1)
        self.frames_written += 1

    def abort(self):
        return self.path

    def close(self):
        return self.path


def ffmpeg_executable():
    """An ffmpeg on PATH, else the one the optional `imageio-ffmpeg` package ships; `None` without either."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg  # noqa: PLC0415 (optional extra)

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return None


def has_audio(path, ffmpeg):
    """True if the video file at `path` carries an audio stream (ffmpeg probes it)."""
    result = subprocess.run([ffmpeg, "-hide_banner", "-i", path], capture_output=True, text=True, errors="replace")
    return re.search(r"Stream #\S+.*: Audio:", result.stderr) is not None


def copy_audio(source, video):
    """Muxes `source`'s audio track(s) into `video` unchanged (stream copy); returns what happened, in words."""
    ffmpeg = ffmpeg_executable()
    if ffmpeg is None:
        return 'no audio copied: no ffmpeg found (install it, or pip install -e ".[video]" for imageio-ffmpeg)'
    if not has_audio(source, ffmpeg):
        return "the source has no audio track"
    root, ext = os.path.splitext(video)
    muxed = f"{root}.audio{ext}"
    command = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-i", video, "-i", source]
    command += ["-map", "0:v:0", "-map", "1:a", "-c", "copy", muxed]  # every frame kept (no -shortest)
    result = subprocess.run(command, capture_output=True, text=True, errors="replace")
    if result.returncode != 0 or not os.path.isfile(muxed):
        if os.path.exists(muxed):
            os.remove(muxed)
        return f"audio not copied: ffmpeg failed ({result.stderr.strip().splitlines()[-1:] or ['no message']})"
    os.replace(muxed, video)
    return "audio copied"
