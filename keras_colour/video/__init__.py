"""Film and video: colourise with temporal consistency, read and write video files and frame folders.

`colourise_video(model, source, target)` is the entry point; `keras-colour colourise film.mp4 --model M
--output out/` runs it from the command line. The flicker measure is `keras_colour.video.evaluate.warping_error`.
"""

from keras_colour.video.colourise import VideoResult, colourise_media, colourise_video, output_path
from keras_colour.video.io import VIDEO_EXTENSIONS, VideoError, is_frame_folder, is_video

__all__ = [
    "VIDEO_EXTENSIONS",
    "VideoError",
    "VideoResult",
    "colourise_media",
    "colourise_video",
    "is_frame_folder",
    "is_video",
    "output_path",
]
