import numpy as np
import pytest
import torch
from PIL import Image

from vqcodec.images import ImageError, crop, list_images, load_image, pad_tensor, sample_image_paths, to_rgb8


def test_rgb_png_roundtrip(tmp_path, rgb_image):
    Image.fromarray(rgb_image).save(tmp_path / "x.png")
    out = load_image(tmp_path / "x.png")
    assert out.dtype == np.uint8 and out.shape == rgb_image.shape
    assert np.array_equal(out, rgb_image)


def test_grayscale_becomes_rgb(tmp_path, rgb_image):
    g = rgb_image[:, :, 0]
    Image.fromarray(g).save(tmp_path / "g.png")
    out = load_image(tmp_path / "g.png")
    assert out.shape == g.shape + (3,)
    assert np.array_equal(out[:, :, 1], g)


def test_rgba_drops_alpha(tmp_path, rgb_image):
    a = np.dstack([rgb_image, np.full(rgb_image.shape[:2], 7, np.uint8)])
    Image.fromarray(a, "RGBA").save(tmp_path / "a.png")
    assert np.array_equal(load_image(tmp_path / "a.png"), rgb_image)


def test_palette_image(tmp_path, rgb_image):
    Image.fromarray(rgb_image).convert("P").save(tmp_path / "p.png")
    out = load_image(tmp_path / "p.png")
    assert out.shape == rgb_image.shape and out.dtype == np.uint8


def test_16bit_png_scaled_to_8bit(tmp_path):
    arr = (np.arange(64 * 32).reshape(32, 64) * 32).astype(np.uint16)
    Image.fromarray(arr).save(tmp_path / "d.png")
    out = load_image(tmp_path / "d.png")
    assert out.dtype == np.uint8 and out.shape == (32, 64, 3)
    assert out.max() > 200 and abs(int(out[-1, -1, 0]) - round(arr[-1, -1] / 65535 * 255)) <= 1


def test_cmyk_jpeg(tmp_path, rgb_image):
    Image.fromarray(rgb_image).convert("CMYK").save(tmp_path / "c.jpg")
    assert load_image(tmp_path / "c.jpg").shape == rgb_image.shape


def test_float_and_uint16_arrays():
    assert to_rgb8(np.ones((2, 2))).max() == 255
    assert to_rgb8(np.full((2, 2, 3), 65535, np.uint16)).max() == 255


@pytest.mark.parametrize("content", [b"", b"hello", b"\x89PNG\r\n\x1a\n\x00\x00"])
def test_not_an_image(tmp_path, content):
    p = tmp_path / "bad.png"
    p.write_bytes(content)
    with pytest.raises(ImageError, match="bad.png"):
        load_image(p)


def test_missing_and_empty(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="no image files"):
        list_images(tmp_path)


def test_sample_images_are_colour_photos():
    paths = sample_image_paths()
    assert len(paths) >= 4
    for p in paths:
        assert load_image(p).shape[2] == 3


@pytest.mark.parametrize("H,W,f", [(1, 1, 4), (3, 5, 4), (8, 8, 8), (10, 3, 16), (33, 47, 8)])
def test_pad_then_crop(H, W, f):
    x = torch.rand(1, 3, H, W)
    y = pad_tensor(x, f)
    assert y.shape[-2] % f == 0 and y.shape[-1] % f == 0
    assert torch.equal(crop(y, H, W), x)


def test_exif_orientation_is_applied(tmp_path):
    """A JPEG stored 40 wide x 20 high with orientation 6 (rotate 90 clockwise to view) loads as
    20 x 40, its left column (red) on top."""
    from PIL import Image

    from vqcodec.images import load_image

    raw = np.zeros((20, 40, 3), np.uint8)
    raw[:, :8] = (255, 0, 0)
    im = Image.fromarray(raw)
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(tmp_path / "p.jpg", exif=exif, quality=95)
    out = load_image(tmp_path / "p.jpg")
    assert out.shape == (40, 20, 3)
    assert out[:6, :, 0].mean() > 200 and out[-6:, :, 0].mean() < 60
