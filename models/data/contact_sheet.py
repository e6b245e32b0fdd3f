"""Contact sheet of the synthetic data: `python -m models.data.contact_sheet` → docs/images/synthetic.png.

Frames of one test stream with their colour-coded labels below, one frame with the unknown object
and its OOD mask, and corrupted frames, so a person can judge at a glance that it is a street.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from models.data.synthetic import CLASSES, IGNORE_INDEX, PALETTE, StreamSpec, generate_stream, split_seeds

OUTPUT = Path("docs/images/synthetic.png")
_GAP = 4
_CAPTION = 16


def colourise(labels: np.ndarray) -> np.ndarray:
    """H×W uint8 class ids → H×W×3 uint8 palette colours; IGNORE_INDEX drawn white."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: len(PALETTE)] = PALETTE
    lut[IGNORE_INDEX] = (255, 255, 255)
    out: np.ndarray = lut[labels]
    return out


def _row(tiles: list[tuple[np.ndarray, str]]) -> Image.Image:
    """Tiles (H×W×3 uint8, caption) side by side, each with its caption above."""
    h, w = tiles[0][0].shape[:2]
    row = Image.new("RGB", (len(tiles) * (w + _GAP) - _GAP, h + _CAPTION), "white")
    draw = ImageDraw.Draw(row)
    font = ImageFont.load_default()
    for i, (tile, caption) in enumerate(tiles):
        x = i * (w + _GAP)
        row.paste(Image.fromarray(tile), (x, _CAPTION))
        draw.text((x + 2, 2), caption, fill="black", font=font)
    return row


def _legend(width: int) -> Image.Image:
    legend = Image.new("RGB", (width, _CAPTION + 4), "white")
    draw = ImageDraw.Draw(legend)
    font = ImageFont.load_default()
    x = 2
    for name, colour in [*zip(CLASSES, PALETTE, strict=True), ("unknown (ignored)", (255, 255, 255))]:
        draw.rectangle((x, 4, x + 12, 16), fill=colour, outline="black")
        draw.text((x + 16, 4), name, fill="black", font=font)
        x += 22 + int(draw.textlength(name, font=font))
    return legend


def build_sheet(seed: int | None = None) -> Image.Image:
    """Render the contact sheet for test stream `seed` (default: the first test seed)."""
    seed = split_seeds("test", 1)[0] if seed is None else seed
    stream = generate_stream(StreamSpec(seed=seed))
    picks = [0, 20, 40, 59]
    frames = _row([(stream.frames[t], f"seed {seed} frame {t}") for t in picks])
    labels = _row([(colourise(stream.labels[t]), "labels") for t in picks])
    # One-frame streams: only the first frame of each is shown, and they render in a blink.
    odd = generate_stream(StreamSpec(seed=seed + 1, num_frames=1, unknown_object=True))
    fog = generate_stream(StreamSpec(seed=seed + 2, num_frames=1, corruption="fog", severity=3))
    noise = generate_stream(StreamSpec(seed=seed + 3, num_frames=1, corruption="gaussian_noise", severity=4))
    ood = np.repeat(odd.ood[0, ..., None].astype(np.uint8) * 255, 3, axis=2)
    extras = _row(
        [
            (odd.frames[0], "unknown object (labels: white = ignored)"),
            (ood, "OOD mask"),
            (fog.frames[0], "fog, severity 3"),
            (noise.frames[0], "gaussian_noise, severity 4"),
        ]
    )
    parts = [frames, labels, extras]
    width = frames.width
    sheet = Image.new("RGB", (width, sum(p.height + _GAP for p in parts) + _CAPTION + 4), "white")
    y = 0
    for part in parts:
        sheet.paste(part, (0, y))
        y += part.height + _GAP
    sheet.paste(_legend(width), (0, y))
    return sheet


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    # 256 colours keep the noisy frames under half a megabyte with no visible loss at this size.
    build_sheet(args.seed).quantize(256, dither=Image.Dither.NONE).save(args.output, optimize=True)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
