"""Data layer: decode videos, read dataset layouts, make dev data, feed training.

``io``         atomic_write: a reader never sees a half-written file
``video``      decode files / frame folders / streams to uint8 RGB, write videos
``records``    VideoRecord (one video of a dataset, any layout), DatasetError,
               ground-truth tracks from pixel masks
``layouts/``   one module per layout: Avenue, ShanghaiTech, UCSD Ped1/2 (``ucsd``),
               UBnormal, plain folders (``folder``), each detected, read and written;
               the registry, detect_layout and load_dataset in its ``__init__``
``devsets/``   dev data: ``synthetic`` (the embedded synthetic scene), ``footage``
               (dev sets cut from real footage), ``writing`` (a dataset tree, atomically)
``training/``  what training reads: ``samples`` (TrainFrames, TrainSamples), ``frame_cache``
               (the training split decoded once, on disk), ``anomalies`` (moving foreign
               objects pasted into training clips)

The names below load their submodule on first use (PEP 562), so importing one
part (the detector needs ``video`` only) does not load the others.
"""

import importlib

# Submodule -> the public names it defines.
_EXPORTS = {
    "io": ["atomic_write"],
    "video": [
        "IMAGE_EXTENSIONS",
        "VIDEO_EXTENSIONS",
        "CorruptFrameWarning",
        "VideoError",
        "VideoInfo",
        "iter_frames",
        "list_frame_files",
        "prefetch",
        "read_image",
        "read_video",
        "video_info",
        "write_frames",
        "write_video",
    ],
    "records": ["DatasetError", "VideoRecord", "tracks_from_masks"],
    "layouts": ["LAYOUTS", "detect_layout", "load_dataset"],
    "devsets.synthetic": ["ANOMALY_KINDS", "make_background", "make_clip", "make_dataset"],
    "training.anomalies": ["ObjectBank", "ObjectError", "ObjectTrack", "maybe_paste", "paste_moving_object"],
}
_SUBMODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_SUBMODULE_OF)


def __getattr__(name: str):
    if name not in _SUBMODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_SUBMODULE_OF[name]}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_SUBMODULE_OF})
