"""ground_r1.data.images: smart_resize input size (SPEC §2) and load_image's conversions and errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ground_r1.data.images import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    PATCH_FACTOR,
    ImageLoadError,
    image_size,
    input_size,
    load_image,
)


def test_release_constants():
    assert (DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS, PATCH_FACTOR) == (4 * 28 * 28, 512 * 28 * 28, 28)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        # 1000x750: rounded 1008x756 = 762,048 px > 401,408, so beta = sqrt(750,000 / 401,408) = 1.3669;
        # w = floor(1000 / 1.3669 / 28) * 28 = 26 * 28 = 728, h = floor(750 / 1.3669 / 28) * 28 = 19 * 28 = 532.
        ((1000, 750), (728, 532)),
        # 500x333: round(500/28)=18 -> 504, round(333/28)=12 -> 336; 169,344 px is within bounds.
        ((500, 333), (504, 336)),
        # 1695x2200 (docvqa): beta = sqrt(3,729,000 / 401,408) = 3.0479; 1695/3.0479/28 = 19.86 -> 532,
        # 2200/3.0479/28 = 25.78 -> 700.
        ((1695, 2200), (532, 700)),
        # 10x10: rounds to 0x0 < 3136 px, beta = sqrt(3136/100) = 5.6, ceil(10*5.6/28) = 2 -> 56x56.
        ((10, 10), (56, 56)),
    ],
)
def test_input_size_is_smart_resize_in_width_height_order(size, expected):
    assert input_size(*size) == expected


def test_input_size_honours_pixel_bounds():
    # max_pixels = 28*28*4: 1000x750 -> beta = sqrt(750000/3136) = 15.465; 1000/15.465/28 = 2.31 -> 56,
    # 750/15.465/28 = 1.73 -> 28.
    assert input_size(1000, 750, min_pixels=784, max_pixels=3136) == (56, 28)


def test_input_size_rejects_bad_sizes():
    with pytest.raises(ValueError, match="aspect ratio"):
        input_size(20100, 100)
    with pytest.raises(ValueError, match="positive"):
        input_size(0, 10)
    with pytest.raises(ValueError, match="min_pixels"):
        input_size(100, 100, min_pixels=5000, max_pixels=4000)


def _save(im: Image.Image, path: Path, **kw) -> Path:
    im.save(path, **kw)
    return path


def test_grayscale_becomes_rgb(tmp_path):
    p = _save(Image.new("L", (6, 4), 77), tmp_path / "g.png")
    out = load_image(p)
    assert (out.mode, out.size, out.getpixel((5, 3))) == ("RGB", (6, 4), (77, 77, 77))


def test_rgba_transparency_composited_on_white(tmp_path):
    im = Image.new("RGBA", (2, 1), (0, 0, 0, 0))
    im.putpixel((1, 0), (10, 20, 30, 255))
    out = load_image(_save(im, tmp_path / "a.png"))
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (255, 255, 255)  # fully transparent -> white background
    assert out.getpixel((1, 0)) == (10, 20, 30)  # opaque pixel unchanged


def test_palette_with_and_without_transparency(tmp_path):
    im = Image.new("P", (2, 1))
    im.putpalette([200, 0, 0, 0, 0, 200] + [0] * 762)
    im.putpixel((0, 0), 0)
    im.putpixel((1, 0), 1)
    plain = load_image(_save(im, tmp_path / "p.png"))
    assert [plain.getpixel((x, 0)) for x in range(2)] == [(200, 0, 0), (0, 0, 200)]
    transparent = load_image(_save(im, tmp_path / "pt.png", transparency=0))
    assert [transparent.getpixel((x, 0)) for x in range(2)] == [(255, 255, 255), (0, 0, 200)]


def test_cmyk(tmp_path):
    # PIL's CMYK->RGB: R = 255 - C - K, ... so (0, 255, 0, 0) is magenta (255, 0, 255).
    p = _save(Image.new("CMYK", (3, 3), (0, 255, 0, 0)), tmp_path / "c.tif")
    assert Image.open(p).mode == "CMYK"
    out = load_image(p)
    assert (out.mode, out.getpixel((1, 1))) == ("RGB", (255, 0, 255))


def test_16bit_is_scaled_not_clipped(tmp_path):
    p = _save(Image.fromarray(np.full((3, 5), 40000, dtype=np.uint16)), tmp_path / "d.png")
    assert Image.open(p).mode.startswith("I")
    out = load_image(p)
    # 40000 / 257 = 155.6 -> 156 (PIL's own convert would clip it to 255: a white image).
    assert (out.mode, out.size, out.getpixel((0, 0))) == ("RGB", (5, 3), (156, 156, 156))


def test_float_image(tmp_path):
    p = _save(Image.fromarray(np.full((2, 2), 100.4, dtype=np.float32), mode="F"), tmp_path / "f.tif")
    assert load_image(p).getpixel((0, 0)) == (100, 100, 100)  # 0..255 range kept, rounded


def test_exif_rotation_swaps_size(tmp_path):
    im = Image.new("RGB", (40, 20), (0, 0, 0))
    im.paste((255, 255, 255), (0, 0, 10, 20))  # white stripe on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    p = _save(im, tmp_path / "r.jpg", exif=exif, quality=95)
    assert Image.open(p).size == (40, 20)
    out = load_image(p)
    assert out.size == (20, 40)
    assert image_size(p) == (20, 40)  # the header-only size agrees with what load_image returns
    # Rotated 90 CW, the left stripe is now at the top.
    assert out.getpixel((10, 2))[0] > 200 and out.getpixel((10, 37))[0] < 50


def test_rgb_passes_through_and_stays_valid_after_close(tmp_path):
    p = _save(Image.new("RGB", (3, 2), (1, 2, 3)), tmp_path / "x.png")
    out = load_image(p)
    assert (out.mode, out.size, out.getpixel((2, 1))) == ("RGB", (3, 2), (1, 2, 3))


@pytest.mark.parametrize("loader", [load_image, image_size])
def test_missing_and_zero_byte(tmp_path, loader):
    missing = tmp_path / "nope.jpg"
    with pytest.raises(ImageLoadError) as err:
        loader(missing)
    assert str(err.value) == f"cannot load image '{missing}': file not found"
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageLoadError) as err:
        loader(empty)
    assert (err.value.path, err.value.reason) == (str(empty), "empty file (0 bytes)")
    assert str(empty) in str(err.value)


def test_garbage_bytes(tmp_path):
    p = tmp_path / "junk.png"
    p.write_bytes(b"this is not an image at all" * 10)
    with pytest.raises(ImageLoadError, match="not a recognised image format") as err:
        load_image(p)
    assert str(p) in str(err.value)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_file_fails_on_load_with_path(tmp_path, suffix):
    rng = np.random.default_rng(0)
    full = tmp_path / f"full{suffix}"
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(full)
    data = full.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    if suffix == ".jpg":
        # The JPEG header is intact: only the full decode can tell. (For PNG, reading the EXIF already walks
        # the chunks and may fail in image_size too.)
        assert image_size(cut) == (64, 64)
    with pytest.raises(ImageLoadError, match="corrupt or truncated") as err:
        load_image(cut)
    assert str(cut) in str(err.value)


def test_image_load_error_is_picklable_oserror():
    err = pickle.loads(pickle.dumps(ImageLoadError("/x/y.jpg", "file not found")))
    assert isinstance(err, OSError)
    assert (err.path, err.reason) == ("/x/y.jpg", "file not found")
    assert str(err) == "cannot load image '/x/y.jpg': file not found"
