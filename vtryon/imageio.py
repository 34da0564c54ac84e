"""Safe image decoding and atomic writes.

Decoding: the pixel count is checked from the header before any pixel is decoded; EXIF
orientation is applied; alpha is flattened on white; grayscale, palette, 16-bit and CMYK
become RGB uint8. Every failure is an :class:`InputError` naming the file.

Writing: to a temporary name in the target folder, then ``os.replace``; the temporary
file is removed on failure, so nothing half-written ever sits under the final name.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vtryon.errors import InputError

# 50 megapixels: a 8660x5773 photo. Larger inputs are refused before decoding; the
# pipeline works at ~1 megapixel anyway, and this bounds memory on hostile files.
MAX_PIXELS = 50_000_000
SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP")
WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


def load_image(path: str | os.PathLike[str], *, role: str = "image", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode ``path`` to RGB uint8 HxWx3, or raise InputError with one clear line."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = Path(path)
    if not p.exists():
        raise InputError(f"{role} {p}: no such file")
    if p.is_dir():
        raise InputError(f"{role} {p}: is a folder, not an image file")
    try:
        size = p.stat().st_size
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"{role} {p}: cannot be read ({exc.strerror or exc})") from None
    if size == 0:
        raise InputError(f"{role} {p}: the file is empty (0 bytes)")
    Image.MAX_IMAGE_PIXELS = None  # we enforce our own limit below, before decoding
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format not in SUPPORTED_FORMATS:
                raise InputError(f"{role} {p}: {im.format} images are not supported; use JPEG, PNG or WebP")
            w, h = im.size
            if w * h > max_pixels:
                raise InputError(
                    f"{role} {p}: {w}x{h} is {w * h / 1e6:.0f} megapixels, above the limit of "
                    f"{max_pixels / 1e6:.0f}; downscale it first"
                )
            if w < 16 or h < 16:
                raise InputError(f"{role} {p}: {w}x{h} is too small; use an image of at least 16x16 pixels")
            im.load()
            im = ImageOps.exif_transpose(im)
            rgb = _to_rgb(im)
    except InputError:
        raise
    except UnidentifiedImageError:
        raise InputError(f"{role} {p}: not an image (or a format other than JPEG, PNG, WebP)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{role} {p}: the image is damaged or truncated ({exc})") from None
    except Image.DecompressionBombError as exc:  # pragma: no cover - our limit is lower
        raise InputError(f"{role} {p}: refused as a decompression bomb ({exc})") from None
    return rgb


def _to_rgb(im) -> np.ndarray:
    from PIL import Image

    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if arr.max() > 255 else 255.0
        arr = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(arr[:, :, None], 3, axis=2)
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("LA", "La", "PA"):
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "RGBa"):
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im.convert("RGBA"))
    if im.mode != "RGB":
        im = im.convert("RGB")  # L, 1, CMYK, YCbCr, F ...
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; move it into place only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; a result is an ordinary file
        os.replace(tmp_path, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def save_image(image: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Write RGB uint8 ``image`` atomically; the format follows the suffix (.png, .jpg, .webp)."""
    from PIL import Image

    path = Path(path)
    fmt = WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"output {path}: unknown image type {path.suffix!r}; use .png, .jpg or .webp")
    img = Image.fromarray(np.ascontiguousarray(image))
    with atomic_path(path) as tmp:
        options = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
        img.save(tmp, format=fmt, **options)
    return path


def save_text(text: str, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
