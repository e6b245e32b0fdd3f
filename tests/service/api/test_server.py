from __future__ import annotations

from pathlib import Path

import pytest

from service import server


def test_server_command_line_beats_environment(
    monkeypatch: pytest.MonkeyPatch, tiny_weights_dir: Path
) -> None:
    monkeypatch.setenv("STREAMUQ_PORT", "9100")
    monkeypatch.setenv("STREAMUQ_DEVICE", "cpu")
    args = server.parse_args(["--port", "9200", "--weights-dir", str(tiny_weights_dir), "--backend", "onnx"])
    settings = server.settings_from_args(args)
    assert (settings.port, settings.device, settings.backend) == (9200, "cpu", "onnx")
    assert settings.weights_dir == tiny_weights_dir.resolve()


def test_server_refuses_missing_weights_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert server.main(["--weights-dir", str(tmp_path)]) == 2
    assert "no weights for 'unet-ss-mcd'" in capsys.readouterr().err


def test_server_refuses_unknown_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert server.main(["--model", "resnet"]) == 2
    assert "unknown model 'resnet'" in capsys.readouterr().err
