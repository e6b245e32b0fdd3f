"""Data for the segmentation nets: labelled synthetic street video and a CamVid-format loader."""

from models.data.camvid import CAMVID11_CLASSES, CAMVID11_PALETTE, load_camvid_folder, load_camvid_pair
from models.data.corruptions import CORRUPTIONS, corrupt
from models.data.synthetic import (
    CLASSES,
    IGNORE_INDEX,
    PALETTE,
    SPLITS,
    StreamSpec,
    VideoStream,
    generate_stream,
    split_seeds,
)

__all__ = [
    "CAMVID11_CLASSES",
    "CAMVID11_PALETTE",
    "CLASSES",
    "CORRUPTIONS",
    "IGNORE_INDEX",
    "PALETTE",
    "SPLITS",
    "StreamSpec",
    "VideoStream",
    "corrupt",
    "generate_stream",
    "load_camvid_folder",
    "load_camvid_pair",
    "split_seeds",
]
