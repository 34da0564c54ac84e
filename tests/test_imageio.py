"""Safe decoding and atomic writes (vtryon/imageio.py)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vtryon.errors import InputError
from vtryon.imageio import load_image, save_image


def _write(tmp_path: Path, name: str, im: Image.Image, **kw) -> Path:
    p = tmp_path / name
    im.save(p, **kw)
    return p


def test_rgb_jpeg_png_webp_round_trip(tmp_path: Path) -> None:
    arr = (np.random.default_rng(0).random((40, 30, 3)) * 255).astype(np.uint8)
    for name, fmt in (("a.png", "PNG"), ("a.webp", "WEBP"), ("a.jpg", "JPEG")):
        p = _write(tmp_path, name, Image.fromarray(arr), format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
        out = load_image(p)
        assert out.shape == (40, 30, 3) and out.dtype == np.uint8
        if fmt != "JPEG":
            assert np.array_equal(out, arr)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = 255  # left half white
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    p = tmp_path / "rot.jpg"
    im.save(p, exif=exif.tobytes(), quality=100)
    out = load_image(p)
    assert out.shape == (40, 20, 3)  # height and width swapped
    assert out[:20].mean() > 200 and out[20:].mean() < 60  # white half now on top


def test_alpha_flattened_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:10, :, 3] = 255  # top half opaque red, bottom transparent
    out = load_image(_write(tmp_path, "a.png", Image.fromarray(rgba, "RGBA")))
    assert tuple(out[5, 5]) == (255, 0, 0)
    assert tuple(out[15, 5]) == (255, 255, 255)


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "I;16", "LA"])
def test_other_modes_become_rgb(tmp_path: Path, mode: str) -> None:
    base = Image.fromarray((np.arange(400).reshape(20, 20) % 256).astype(np.uint8))
    if mode == "I;16":
        im = Image.fromarray((np.arange(400).reshape(20, 20) * 150).astype(np.uint16))
    else:
        im = base.convert(mode)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    out = load_image(_write(tmp_path, f"m.{fmt.lower()}", im, format=fmt))
    assert out.shape == (20, 20, 3) and out.dtype == np.uint8
    if mode == "I;16":
        assert out.max() > 200  # scaled from 16 bits, not clipped to black


def test_large_image_refused_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = _write(tmp_path, "big.png", Image.new("RGB", (200, 200)))
    decoded = []
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(1))
    with pytest.raises(InputError, match="megapixels"):
        load_image(p, max_pixels=10_000)
    assert not decoded


def test_decompression_bomb_refused(tmp_path: Path) -> None:
    # a 20000x20000 PNG of one colour is tiny on disk and 1.2 GB decoded
    p = tmp_path / "bomb.png"
    Image.new("L", (20000, 20000)).save(p, optimize=True)
    assert p.stat().st_size < 2_000_000
    with pytest.raises(InputError, match="above the limit"):
        load_image(p)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_text("not an image at all"), "not an image"),
        (lambda p: p.mkdir(), "folder"),
    ],
)
def test_bad_files_give_one_clear_error(tmp_path: Path, make, message: str) -> None:
    p = tmp_path / "x.jpg"
    make(p)
    with pytest.raises(InputError, match=message) as info:
        load_image(p, role="person image")
    assert str(p) in str(info.value) and "\n" not in str(info.value)


def test_truncated_file(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(1).random((64, 64, 3)) * 255).astype(np.uint8)).save(buf, format="PNG")
    p = tmp_path / "t.png"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(InputError, match="damaged or truncated"):
        load_image(p)


def test_unsupported_format(tmp_path: Path) -> None:
    p = _write(tmp_path, "a.bmp", Image.new("RGB", (20, 20)), format="BMP")
    with pytest.raises(InputError, match="not supported"):
        load_image(p)


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out" / "r.png"

    def boom(self, fp, *a, **k):
        Path(fp).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", boom)
    with pytest.raises(OSError):
        save_image(np.zeros((8, 8, 3), np.uint8), target)
    assert list(target.parent.iterdir()) == []


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "r.png"
    save_image(np.full((16, 16, 3), 10, np.uint8), target)
    save_image(np.full((16, 16, 3), 200, np.uint8), target)
    assert load_image(target)[0, 0, 0] == 200
    assert [p.name for p in tmp_path.iterdir()] == ["r.png"]


def test_written_files_have_ordinary_permissions(tmp_path: Path) -> None:
    import os

    target = save_image(np.zeros((16, 16, 3), np.uint8), tmp_path / "r.png")
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
