"""MP4 writer (atomic, macro-block sized, readable) and depth / normal colouring."""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest

from feat2gs.video import colorize_depth, normals_to_rgb, write_mp4


def read_frames(path: Path) -> np.ndarray:
    with imageio.get_reader(path, format="FFMPEG") as reader:
        return np.stack([frame for frame in reader.iter_data()])


def test_array_is_cropped_to_multiples_of_16_and_readable(tmp_path: Path) -> None:
    frames = np.zeros((7, 40, 50, 3), dtype=np.uint8)
    frames[:, :32, :48] = (np.arange(7) * 30 + 20)[:, None, None, None]  # region kept by the crop
    out = tmp_path / "video.mp4"
    write_mp4(out, frames, fps=10)
    decoded = read_frames(out)
    assert decoded.shape == (7, 32, 48, 3)
    np.testing.assert_allclose(decoded.reshape(7, -1).mean(1), np.arange(7) * 30 + 20, atol=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["video.mp4"]
    data = out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart


def test_small_frames_from_generator_are_padded(tmp_path: Path) -> None:
    out = tmp_path / "small.mp4"
    write_mp4(out, (np.full((8, 12, 3), 255, dtype=np.uint8) for _ in range(3)))
    decoded = read_frames(out)
    assert decoded.shape == (3, 16, 16, 3)
    assert decoded[:, :6, :10].mean() > 240 and decoded[:, 10:, 13:].mean() < 15


def test_failure_midway_leaves_no_file_and_keeps_old_one(tmp_path: Path) -> None:
    out = tmp_path / "video.mp4"
    out.write_bytes(b"old")

    def frames():
        yield np.zeros((16, 16, 3), dtype=np.uint8)
        raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError, match="renderer crashed"):
        write_mp4(out, frames())
    assert out.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["video.mp4"]


def test_invalid_frames_raise(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no frames"):
        write_mp4(tmp_path / "a.mp4", [])
    with pytest.raises(ValueError, match="uint8"):
        write_mp4(tmp_path / "b.mp4", np.zeros((2, 16, 16, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="differs"):
        write_mp4(tmp_path / "c.mp4", [np.zeros((16, 16, 3), np.uint8), np.zeros((32, 16, 3), np.uint8)])
    assert list(tmp_path.iterdir()) == []


def test_colorize_depth() -> None:
    depth = np.linspace(1.0, 5.0, 20).reshape(4, 5)
    valid = np.ones_like(depth, dtype=bool)
    valid[0, 0] = False
    depth[3, 4] = np.nan
    rgb = colorize_depth(depth, valid)
    assert rgb.shape == (4, 5, 3) and rgb.dtype == np.uint8
    assert (rgb[0, 0] == 0).all() and (rgb[3, 4] == 0).all()
    assert rgb[0, 1, 0] > rgb[0, 1, 2]  # nearest valid pixel: red end of Spectral
    assert rgb[3, 3, 2] > rgb[3, 3, 0]  # farthest valid pixel: blue end
    assert colorize_depth(np.full((2, 2), 3.0)).shape == (2, 2, 3)  # constant depth: no division by zero


def test_normals_to_rgb() -> None:
    normals = np.array([[[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [2.0, -3.0, 0.0]]])
    rgb = normals_to_rgb(normals)
    assert rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[0], [[128, 128, 255], [0, 128, 128], [255, 0, 128]])
