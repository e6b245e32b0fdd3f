from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from benchmarks import load
from models import ModelCard, create_model
from models.data.synthetic import CLASSES, PALETTE


def tiny_weights(folder: Path, name: str = "unet-ss-mcd") -> Path:
    torch.manual_seed(0)
    model = create_model(name, widths=(4, 4, 4, 4, 4)).eval()
    save_file(model.state_dict(), str(folder / f"{name}.safetensors"))
    ModelCard(name=name, classes=CLASSES, palette=PALETTE, input_size=(32, 48), config=model.config).save(
        folder / f"{name}.json"
    )
    return folder


def test_clip_frames_read_the_shared_gifs() -> None:
    clips = sorted(load.CLIPS_DIR.glob("*.gif"))
    if not clips:
        pytest.skip(f"no clips in {load.CLIPS_DIR}")
    frames = load.clip_frames(clips[0], limit=3)
    assert len(frames) == 3 and frames[0].ndim == 3 and frames[0].shape[2] == 3


@pytest.mark.e2e
@pytest.mark.slow
def test_load_drives_a_live_server_over_ws_and_http(tmp_path: Path) -> None:
    config = load.LoadConfig(
        stream_counts=(1, 2),
        sources=("synthetic",),
        fps=8.0,
        duration_s=1.0,
        drain_s=10.0,
        engine_frames=3,
        weights_dir=tiny_weights(tmp_path),
    )
    result = load.run(config, tmp_path, log=lambda _: None)
    assert len(result.runs) == 4
    for run in result.runs:
        assert run["sent"] == 8 * run["streams"]
        assert run["answered"] > 0
        assert run["answered"] + run["drops"] + run["errors"] == run["sent"]
        assert run["p50_ms"] > 0
    assert len(load.targets(result)) == 4
    assert "achieved frames/s" in (tmp_path / "load.md").read_text()
