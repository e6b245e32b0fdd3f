"""The contact sheet script writes a small PNG showing frames, labels, OOD and corruption."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from models.data.contact_sheet import colourise, main
from models.data.synthetic import IGNORE_INDEX, PALETTE


def test_colourise_uses_the_palette() -> None:
    labels = np.array([[0, 5], [IGNORE_INDEX, 7]], dtype=np.uint8)
    rgb = colourise(labels)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 1]) == PALETTE[5] and tuple(rgb[1, 0]) == (255, 255, 255)


def test_contact_sheet_main_writes_small_png(tmp_path: Path) -> None:
    out = tmp_path / "sheet.png"
    main(["--output", str(out), "--seed", "2000002"])
    assert out.stat().st_size < 500_000
    with Image.open(out) as img:
        assert img.width == 4 * 256 + 3 * 4
        assert img.height > 3 * 192
