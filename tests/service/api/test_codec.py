from __future__ import annotations

import base64
import io
import json
import math

import numpy as np
import pytest
from PIL import Image

from service import codec
from service.errors import FrameDecodeError, InvalidParameter, UnsupportedMediaType
from service.types import OUTPUT_NAMES, UncertaintyMaps


def _image(height: int = 24, width: int = 32) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _encode(array: np.ndarray, fmt: str, mode: str | None = None) -> bytes:
    out = io.BytesIO()
    image = Image.fromarray(array)
    if mode:
        image = image.convert(mode)
    image.save(out, format=fmt)
    return out.getvalue()


def _maps(height: int = 6, width: int = 5, classes: int = 8) -> UncertaintyMaps:
    rng = np.random.default_rng(2)
    entropy = rng.uniform(0, math.log(classes), (height, width)).astype(np.float32)
    aleatoric = (entropy * 0.7).astype(np.float32)
    return UncertaintyMaps(
        mask=rng.integers(0, classes, (height, width), dtype=np.uint8),
        confidence=rng.uniform(0.2, 1, (height, width)).astype(np.float32),
        entropy=entropy,
        aleatoric=aleatoric,
        epistemic=(entropy - aleatoric).astype(np.float32),
    )


def test_decode_png_round_trips_exactly() -> None:
    array = _image()
    decoded = codec.decode_image(_encode(array, "PNG"), "image/png")
    assert decoded.dtype == np.uint8 and decoded.shape == (24, 32, 3)
    np.testing.assert_array_equal(decoded, array)


def test_decode_jpeg_is_close() -> None:
    array = np.full((16, 16, 3), 120, dtype=np.uint8)
    decoded = codec.decode_image(_encode(array, "JPEG"), "image/jpeg; charset=binary")
    assert decoded.shape == (16, 16, 3)
    assert np.abs(decoded.astype(int) - 120).max() <= 3


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_decode_converts_other_modes_to_rgb(mode: str) -> None:
    decoded = codec.decode_image(_encode(_image(), "PNG", mode), "image/png")
    assert decoded.shape == (24, 32, 3)


def test_decode_raw_rgb_with_its_size() -> None:
    array = _image(5, 7)
    decoded = codec.decode_image(array.tobytes(), codec.RAW_TYPE, width=7, height=5)
    np.testing.assert_array_equal(decoded, array)


def test_decode_raw_rgb_of_wrong_size_names_both_sizes() -> None:
    with pytest.raises(FrameDecodeError, match=r"needs 105 bytes.*got 104"):
        codec.decode_image(b"\0" * 104, codec.RAW_TYPE, width=7, height=5)


def test_decode_raw_rgb_without_size_is_refused() -> None:
    with pytest.raises(InvalidParameter, match="width and height"):
        codec.decode_image(b"\0" * 12, codec.RAW_TYPE)


@pytest.mark.parametrize("data", [b"not an image", b"\x89PNG\r\n\x1a\n" + b"\0" * 40])
def test_decode_corrupt_bytes_raise_frame_decode_error(data: bytes) -> None:
    with pytest.raises(FrameDecodeError, match="could not decode"):
        codec.decode_image(data, "image/png")


def test_decode_truncated_png_raises_frame_decode_error() -> None:
    data = _encode(_image(64, 64), "PNG")
    with pytest.raises(FrameDecodeError):
        codec.decode_image(data[: len(data) // 2], "image/png")


def test_decode_png_sent_as_jpeg_is_refused() -> None:
    with pytest.raises(FrameDecodeError, match="JPEG"):
        codec.decode_image(_encode(_image(), "PNG"), "image/jpeg")


def test_decode_unsupported_type_raises_415() -> None:
    with pytest.raises(UnsupportedMediaType) as info:
        codec.decode_image(b"GIF89a", "image/gif")
    assert info.value.status_code == 415


def test_decode_refuses_images_over_the_limits() -> None:
    with pytest.raises(InvalidParameter, match="too large"):
        codec.decode_image(_encode(_image(24, 32), "PNG"), "image/png", limits=codec.ImageLimits(max_side=16))


def test_decode_empty_body_is_refused() -> None:
    with pytest.raises(FrameDecodeError, match="empty"):
        codec.decode_image(b"", "image/png")


def test_sniff_type_by_magic_bytes() -> None:
    assert codec.sniff_type(_encode(_image(), "PNG")) == "image/png"
    assert codec.sniff_type(_encode(_image(), "JPEG")) == "image/jpeg"
    assert codec.sniff_type(b"raw") is None


def test_parse_outputs_orders_and_validates() -> None:
    assert codec.parse_outputs(None) == OUTPUT_NAMES
    assert codec.parse_outputs("entropy, mask") == ("mask", "entropy")
    with pytest.raises(InvalidParameter, match="unknown outputs"):
        codec.parse_outputs("mask,depth")
    with pytest.raises(InvalidParameter):
        codec.parse_outputs("")


def test_encode_maps_png_round_trips_within_half_a_step() -> None:
    maps = _maps()
    encoded = codec.encode_maps_png(maps, OUTPUT_NAMES, 8)
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded["mask"]["data"]))))
    np.testing.assert_array_equal(mask, maps.mask)
    assert encoded["mask"]["scale"] is None
    entry = encoded["entropy"]
    assert entry["scale"] == {"min": 0.0, "max": pytest.approx(math.log(8))}
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(entry["data"])))).astype(np.float32)
    assert pixels.dtype == np.float32 and pixels.shape == maps.entropy.shape
    values = pixels / 255 * (entry["scale"]["max"] - entry["scale"]["min"]) + entry["scale"]["min"]
    assert np.abs(values - maps.entropy).max() <= math.log(8) / 255 / 2 + 1e-6


def test_encode_npz_holds_uint8_mask_float16_maps_and_meta() -> None:
    maps = _maps()
    data = codec.encode_npz(maps, ("mask", "epistemic"), {"frame_index": 3})
    with np.load(io.BytesIO(data)) as npz:
        assert set(npz.files) == {"meta", "mask", "epistemic"}
        assert npz["mask"].dtype == np.uint8 and npz["epistemic"].dtype == np.float16
        np.testing.assert_array_equal(npz["mask"], maps.mask)
        np.testing.assert_allclose(npz["epistemic"], maps.epistemic, atol=1e-3)
        assert json.loads(str(npz["meta"])) == {"frame_index": 3}


def test_summarize_counts_classes_and_uncertain_pixels() -> None:
    maps = _maps()
    classes = tuple(f"c{i}" for i in range(8))
    summary = codec.summarize(maps, classes)
    assert sum(summary["class_fractions"].values()) == pytest.approx(1.0)
    threshold = codec.UNCERTAIN_ENTROPY_FRACTION * math.log(8)
    assert summary["uncertain_fraction"] == pytest.approx(float((maps.entropy > threshold).mean()))
    assert summary["mean_entropy"] == pytest.approx(float(maps.entropy.mean()))


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (360, 480)])
def test_png_bytes_is_lossless_and_read_by_pillow(shape: tuple[int, int]) -> None:
    gray = np.random.default_rng(3).integers(0, 256, shape, dtype=np.uint8)
    decoded = Image.open(io.BytesIO(codec.png_bytes(gray)))
    assert decoded.mode == "L"
    np.testing.assert_array_equal(np.asarray(decoded), gray)
