"""Data layer: decode videos, read dataset layouts, make synthetic scenes and anomalies.

``video``      decode files / frame folders / streams to uint8 RGB, write videos
``datasets``   benchmark layouts (Avenue, ShanghaiTech, UCSD Ped1/2, UBnormal) and
               plain folders as uniform :class:`VideoRecord` lists
``synthetic``  the embedded synthetic surveillance scene (demo and test data)
``footage``    dev sets cut from real fixed-camera footage, anomalies made of the footage
``layouts``    writers of the benchmark layouts, shared by ``synthetic`` and ``footage``
``anomalies``  moving foreign objects pasted into training clips
"""

from sdmae.data.io import atomic_write
from sdmae.data.anomalies import ObjectBank, ObjectError, ObjectTrack, maybe_paste, paste_moving_object
from sdmae.data.datasets import (
    LAYOUTS,
    DatasetError,
    VideoRecord,
    detect_layout,
    load_dataset,
    tracks_from_masks,
)
from sdmae.data.devsets.synthetic import ANOMALY_KINDS, make_background, make_clip, make_dataset
from sdmae.data.video import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    CorruptFrameWarning,
    VideoError,
    VideoInfo,
    iter_frames,
    list_frame_files,
    prefetch,
    read_image,
    read_video,
    video_info,
    write_frames,
    write_video,
)

__all__ = [
    "ANOMALY_KINDS",
    "CorruptFrameWarning",
    "IMAGE_EXTENSIONS",
    "LAYOUTS",
    "VIDEO_EXTENSIONS",
    "DatasetError",
    "ObjectBank",
    "ObjectError",
    "ObjectTrack",
    "VideoError",
    "VideoInfo",
    "VideoRecord",
    "atomic_write",
    "detect_layout",
    "iter_frames",
    "list_frame_files",
    "prefetch",
    "load_dataset",
    "make_background",
    "make_clip",
    "make_dataset",
    "maybe_paste",
    "paste_moving_object",
    "read_image",
    "read_video",
    "tracks_from_masks",
    "video_info",
    "write_frames",
    "write_video",
]
