"""`streamuq client`: its pieces on their own, then end to end against a live `streamuq serve`."""

from __future__ import annotations

import base64
import io
import math
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from live_server import serving
from PIL import Image, ImageSequence

from service import client

REPO = Path(__file__).resolve().parents[2]
API_KEY = "demo-key-0123456789"
CLIPS = REPO.parent / "shared" / "data" / "camvid" / "clips"
CLIP = CLIPS / "street-1.gif"


def _gif_frames(count: int | None = None) -> list[Image.Image]:
    if not CLIP.is_file():
        pytest.skip(f"sample clip {CLIP} is not here")
    with Image.open(CLIP) as gif:
        frames = [frame.convert("RGB") for frame in ImageSequence.Iterator(gif)]
    return frames[:count]


def _write_mp4(path: Path, frames: list[Image.Image], fps: int = 10) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames[0].size
        stream.pix_fmt = "yuv420p"
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_image(image)))
        container.mux(stream.encode())
    return path


def _png_b64(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


# ---------------------------------------------------------------- pieces


def test_client_imports_without_torch() -> None:
    code = "import sys, service.client; assert 'torch' not in sys.modules and 'models' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_client_modes_match_the_service() -> None:
    from service.types import MODES

    assert set(client.MODES) == set(MODES)


def test_ws_url_builds_stream_path_and_query() -> None:
    url = client.ws_url("http://127.0.0.1:8000/", "cam-1", "dnn", ["mask", "entropy"])
    assert url == "ws://127.0.0.1:8000/v1/streams/cam-1/ws?mode=dnn&outputs=mask%2Centropy"
    assert client.ws_url("https://host/prefix", "a", "vq-bnn", ["mask"]).startswith("wss://host/prefix/v1/")
    with pytest.raises(client.ClientError, match="http://"):
        client.ws_url("ftp://host", "a", "dnn", ["mask"])


def test_colormap_spans_viridis_over_the_range() -> None:
    colours = client.colormap(np.array([[-1.0, 0.0, 1.0, 2.0]]), 0.0, 1.0)
    assert colours.shape == (1, 4, 3) and colours.dtype == np.uint8
    assert colours[0, 0].tolist() == colours[0, 1].tolist() == [68, 1, 84]
    assert colours[0, 2].tolist() == colours[0, 3].tolist() == [253, 231, 37]


def test_decode_map_applies_the_scale() -> None:
    pixels = np.array([[0, 255], [51, 102]], dtype=np.uint8)
    values = client.decode_map({"format": "png", "scale": {"min": 0.0, "max": 2.0}, "data": _png_b64(pixels)})
    assert values.dtype == np.float32
    np.testing.assert_allclose(values, [[0.0, 2.0], [0.4, 0.8]], atol=1e-6)
    mask = client.decode_map({"format": "png", "scale": None, "data": _png_b64(pixels)})
    assert mask.dtype == np.uint8 and mask.tolist() == pixels.tolist()
    with pytest.raises(client.ClientError, match="png"):
        client.decode_map({"format": "raw", "data": ""})


def test_compose_blends_mask_and_puts_heatmap_beside() -> None:
    image = Image.new("RGB", (4, 2), (100, 100, 100))
    mask = np.array([[0, 0, 1, 1], [0, 0, 1, 1]], dtype=np.uint8)
    palette = np.array([[0, 0, 0], [200, 0, 0]], dtype=np.uint8)
    heat = np.full((1, 2, 3), 7, dtype=np.uint8)  # another size: resized to the frame
    out = client.compose(image, mask, heat, palette, opacity=0.5)
    assert out.shape == (2, 8, 3)
    assert out[0, 0].tolist() == [50, 50, 50] and out[0, 3].tolist() == [150, 50, 50]
    assert (out[:, 4:] == 7).all()


def test_value_range_is_nats_or_unit() -> None:
    assert client.value_range("confidence", 11) == (0.0, 1.0)
    assert client.value_range("epistemic", 11) == (0.0, pytest.approx(math.log(11)))


def test_read_frames_from_a_folder_in_natural_order(tmp_path: Path) -> None:
    for i in (10, 2, 1):
        Image.new("RGB", (64, 32), (i, i, i)).save(tmp_path / f"f{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    frames, fps, count = client.read_frames(tmp_path, max_side=32)
    got = list(frames)
    assert (fps, count) == (client.DEFAULT_IMAGE_FPS, 3)
    assert [f.image.getpixel((0, 0)) for f in got] == [(1, 1, 1), (2, 2, 2), (10, 10, 10)]
    assert [f.timestamp for f in got] == [0.0, 0.1, 0.2]
    assert got[0].image.size == (32, 16)


def test_read_frames_from_a_video_skips_to_the_rate(tmp_path: Path) -> None:
    video = _write_mp4(tmp_path / "clip.mp4", _gif_frames(20), fps=10)
    frames, fps, count = client.read_frames(video)
    assert fps == 10 and count == 20 and len(list(frames)) == 20
    frames, fps, count = client.read_frames(video, fps=5)
    got = list(frames)
    assert fps == 5 and count == 10 and len(got) == 10
    assert [f.timestamp for f in got[:3]] == pytest.approx([0.0, 0.2, 0.4])


def test_read_frames_refuses_what_is_not_there(tmp_path: Path) -> None:
    with pytest.raises(client.ClientError, match="neither"):
        client.read_frames(tmp_path / "missing.mp4")
    with pytest.raises(client.ClientError, match="no images"):
        client.read_frames(tmp_path)
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    with pytest.raises(client.ClientError, match="cannot open"):
        client.read_frames(tmp_path / "junk.mp4")


def test_stats_summary_has_percentiles_and_drops() -> None:
    stats = client.Stats(sent=10, results=8, dropped=2, latencies_ms=[float(i) for i in range(1, 101)])
    stats.seconds = 2.0
    assert stats.fps == 4.0
    assert stats.percentiles()["p50"] == pytest.approx(50.5)
    text = stats.summary()
    assert "10 sent, 8 results, 2 dropped" in text and "p99 99.0 ms" in text


def test_client_main_refuses_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        client.main(["clip.mp4", "--out", "overlay.avi"])
    assert exit_info.value.code == 2
    assert ".mp4 or .gif" in capsys.readouterr().err


def test_client_main_reports_an_unreachable_server(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connection refused
        code = client.main([str(CLIP), "--url", f"http://127.0.0.1:{port}", "--quiet"])
    assert code == 1
    assert "cannot reach" in capsys.readouterr().err


# ---------------------------------------------------------------- end to end


SHIPPED_MODEL_ARGS = ["--log-level", "warning"]  # no --weights-dir: the shipped model


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(SHIPPED_MODEL_ARGS, tmp_path_factory.mktemp("server") / "serve.log") as server:
        yield server.url


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The same with API keys on: `API_KEY` is the only one."""
    log = tmp_path_factory.mktemp("keyed") / "serve.log"
    with serving(SHIPPED_MODEL_ARGS, log, {"STREAMUQ_API_KEYS": API_KEY}) as server:
        yield server.url


@pytest.mark.e2e
@pytest.mark.slow
def test_client_streams_a_video_and_writes_the_overlay(
    live_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frames = _gif_frames(24)
    video = _write_mp4(tmp_path / "street.mp4", frames, fps=10)
    out = tmp_path / "overlay.mp4"
    argv = [str(video), "--url", live_server, "--stream", "cli-e2e", "--mode", "vq-bnn", "--out", str(out)]
    assert client.main([*argv, "--quiet"]) == 0

    printed = capsys.readouterr().out
    match = re.search(r"frames: (\d+) sent, (\d+) results, (\d+) dropped, 0 errors", printed)
    assert match, printed
    sent, results, dropped = map(int, match.groups())
    assert sent == 24 and results >= 12 and results + dropped == sent
    assert re.search(r"latency \(round trip\): p50 [\d.]+ ms, p90 [\d.]+ ms, p99 [\d.]+ ms", printed)

    with av.open(str(out)) as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    width, height = frames[0].size
    assert len(decoded) == 24  # a dropped frame repeats the newest result: the timing stays real
    assert decoded[0].shape == (height, 2 * width, 3)
    overlay, heat = decoded[-1][:, :width], decoded[-1][:, width:]
    assert len(np.unique(overlay.reshape(-1, 3) // 8, axis=0)) > 50  # the street shows through the mask
    assert heat.mean() > 30  # viridis starts at a dark violet, never black


@pytest.mark.e2e
@pytest.mark.slow
def test_client_paces_a_gif_in_real_time_and_writes_a_gif(
    live_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "overlay.gif"
    argv = [str(CLIP), "--url", live_server, "--fps", "5", "--mode", "dnn", "--uncertainty", "confidence"]
    assert client.main([*argv, "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "15 sent" in printed  # a 20 frames/s clip sent at 5
    with Image.open(out) as gif:
        assert gif.n_frames == 15 and gif.size == (2 * 240, 180)


@pytest.mark.e2e
@pytest.mark.slow
def test_client_reports_a_refused_stream_id(live_server: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = client.main([str(CLIP), "--url", live_server, "--stream", "bad id!", "--quiet"])
    assert code == 1
    assert "streamuq client:" in capsys.readouterr().err


@pytest.mark.e2e
@pytest.mark.slow
def test_client_sends_the_api_key(keyed_server: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [str(CLIP), "--url", keyed_server, "--fps", "4", "--quiet"]
    assert client.main(argv) == 1
    assert "--api-key" in capsys.readouterr().err
    assert client.main([*argv, "--api-key", "wrong"]) == 1
    assert client.main([*argv, "--api-key", API_KEY]) == 0
    assert "0 errors" in capsys.readouterr().out
