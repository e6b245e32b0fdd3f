import numpy as np
import pytest
import torch

from service import preprocess, uncertainty
from service.errors import InvalidParameter

CPU = torch.device("cpu")


def test_to_batch_resizes_frames_of_mixed_sizes_in_order() -> None:
    frames = [
        np.full((32, 48, 3), 255, np.uint8),
        np.zeros((64, 96, 3), np.uint8),
        np.full((20, 30, 3), 128, np.uint8),
    ]
    batch = preprocess.to_batch(frames, (32, 48), CPU)
    assert batch.shape == (3, 3, 32, 48) and batch.dtype == torch.float32
    torch.testing.assert_close(batch[0], torch.ones(3, 32, 48))
    torch.testing.assert_close(batch[1], torch.zeros(3, 32, 48))
    torch.testing.assert_close(batch[2], torch.full((3, 32, 48), 128 / 255))


def test_to_frames_resizes_mask_by_nearest_and_maps_bilinear() -> None:
    # Left half class 1, right half class 2, at the model's 4×4; the frame is 8×6.
    P = torch.zeros(1, 3, 4, 4)
    P[0, 1, :, :2] = 1.0
    P[0, 2, :, 2:] = 1.0
    maps = uncertainty.output_maps(P, torch.zeros(1, 4, 4))
    (out,) = preprocess.to_frames(maps, [(8, 6)])
    assert out.mask.shape == (8, 6) and out.mask.dtype == np.uint8
    assert set(np.unique(out.mask)) == {1, 2}  # no blended class ids
    np.testing.assert_array_equal(out.mask[:, :3], 1)
    np.testing.assert_array_equal(out.mask[:, 3:], 2)
    assert out.confidence.shape == (8, 6) and out.confidence.dtype == np.float32
    np.testing.assert_allclose(out.confidence, 1.0)


def test_check_frame_names_the_bad_shape_and_dtype() -> None:
    preprocess.check_frame(np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(InvalidParameter, match=r"got shape \(2, 2\)"):
        preprocess.check_frame(np.zeros((2, 2), np.uint8))
    with pytest.raises(InvalidParameter, match="ndarray of float64"):
        preprocess.check_frame(np.zeros((2, 2, 3)))
    with pytest.raises(InvalidParameter, match="list"):
        preprocess.check_frame([[0, 0, 0]])
