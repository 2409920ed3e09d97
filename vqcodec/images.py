"""Image IO, the bundled sample images, dataset folders, padding.

Every loaded image is 8-bit RGB, numpy uint8 (H, W, 3). Grayscale, RGBA
(alpha dropped, composited on nothing), palette, CMYK and 16-bit images are
converted on load. Anything that is not a readable image raises
``ImageError`` with a one-line message naming the file.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vqcodec.bits import MAX_IMAGE_PIXELS
from vqcodec.files import InputError, check_input, special_kind

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif")

# Colour photographs shipped inside scikit-image: the embedded default set.
SAMPLE_IMAGES = ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg")

#: Where the shared datasets live, relative to the project root.
DATASETS = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"


class ImageError(ValueError):
    """A path that is not a usable image (message: one line, names the file)."""


class ImageNote(UserWarning):
    """Something about a loaded image the user should know (the CLI prints it as one "Note:" line),
    e.g. that an animated image's first frame is the one used."""


def to_rgb8(arr: np.ndarray) -> np.ndarray:
    """Any 2-D/3-D image array (gray, gray+alpha, RGB, RGBA; uint8/uint16/float) -> uint8 (H, W, 3)."""
    a = np.asarray(arr)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise ImageError(f"unsupported image array shape {a.shape}")
    if a.shape[2] in (2, 4):  # drop alpha
        a = a[:, :, :-1]
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if a.dtype == np.uint16 or (np.issubdtype(a.dtype, np.integer) and a.max(initial=0) > 255):
        return np.ascontiguousarray((a.astype(np.float64) / 65535.0 * 255.0 + 0.5).astype(np.uint8))
    if np.issubdtype(a.dtype, np.floating):
        return np.ascontiguousarray((np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))
    return np.ascontiguousarray(a.astype(np.uint8))


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as uint8 (H, W, 3) RGB, turned upright by its EXIF orientation (as
    viewers show it; a camera's portrait JPEG is stored sideways with an orientation tag)."""
    from PIL import Image, ImageOps, UnidentifiedImageError  # Pillow (~0.13 s to import) only to read or write files

    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not an image")
    try:
        check_input(path)  # a FIFO or a device would block Pillow's read
    except InputError as exc:
        raise ImageError(str(exc)) from None
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > MAX_IMAGE_PIXELS:
                raise ImageError(f"{path}: {w}x{h} is larger than the limit of {MAX_IMAGE_PIXELS} pixels")
            frames = getattr(im, "n_frames", 1)
            if frames > 1:
                warnings.warn(f"{path}: an animated image of {frames} frames; frame 0 is used", ImageNote,
                              stacklevel=2)
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = to_rgb8(np.asarray(im).astype(np.uint16) if im.mode != "I"
                              else np.clip(np.asarray(im), 0, 65535).astype(np.uint16))
            elif im.mode in ("RGB", "L"):
                arr = to_rgb8(np.asarray(im))
            else:  # P, PA, LA, RGBA, CMYK, YCbCr, 1, F ...
                arr = to_rgb8(np.asarray(im.convert("RGBA" if "A" in im.mode or im.mode == "P" else "RGB")))
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError(f"{path}: larger than the limit of {MAX_IMAGE_PIXELS} pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: not a readable image ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageError(f"{path}: empty image")
    return arr


def image_name(path: str | os.PathLike) -> str:
    """The name an image is known by in results, seeds and messages: the file name, with bytes that
    are not UTF-8 (a Latin-1 ``caf\xe9.png``) written as ``\xe9`` (a name JSON, the terminal and
    the per-image seeds can all take)."""
    return os.fsencode(Path(path).name).decode("utf-8", "backslashreplace")


def save_image(path: str | os.PathLike, img: np.ndarray) -> None:
    """Write a uint8 image atomically (a temporary file, then a rename): a failure (full disk,
    permissions) raises ``ImageError`` and leaves neither a half-written file nor the temporary."""
    from PIL import Image  # Pillow (~0.13 s to import) only to read or write files

    path = Path(path)
    fmt = check_image_output(path)
    if special_kind(path) is not None:  # a device or a FIFO: the rename would replace it
        raise ImageError(f"{path}: is {special_kind(path)}, not a regular file")
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        Image.fromarray(np.asarray(img, dtype=np.uint8)).save(tmp, format=fmt)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ImageError(f"{path}: cannot write ({exc.strerror or exc.__class__.__name__})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_image_output(path: str | os.PathLike) -> str:
    """The Pillow format an output file name asks for (by its extension; none: PNG), or
    ``ImageError`` for one Pillow cannot write: checked before the work, not after it."""
    from PIL import Image  # Pillow (~0.13 s to import) only to read or write files

    suffix = Path(path).suffix.lower()
    if not suffix:
        return "PNG"
    fmt = Image.registered_extensions().get(suffix)
    if fmt is None or fmt not in Image.SAVE:
        raise ImageError(f"{path}: cannot write images of type {suffix or '(no extension)'!r} (use .png)")
    return fmt


def sample_image_paths() -> list[Path]:
    """The colour photographs shipped inside scikit-image."""
    import skimage  # scikit-image only for its sample photographs

    root = Path(skimage.__file__).resolve().parent / "data"
    return [root / name for name in SAMPLE_IMAGES if (root / name).exists()]


def list_images(folder: str | os.PathLike | None) -> list[Path]:
    """Image files in a folder (sorted, recursive), a single image file, or the sample set (None)."""
    if folder is None:
        paths = sample_image_paths()
        if not paths:
            raise ImageError("no bundled sample images found (is scikit-image installed?)")
        return paths
    folder = Path(folder)
    if not folder.exists():
        raise ImageError(f"{folder}: no such file or directory")
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise ImageError(f"{folder}: is {special_kind(folder)}, not an image file or a folder")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise ImageError(f"{folder}: no image files found (looked for {', '.join(IMAGE_SUFFIXES)})")
    return paths


def default_training_folder() -> Path | None:
    """../shared/datasets/bsds500 when present."""
    p = DATASETS / "bsds500"
    return p if p.is_dir() else None


def default_kodak_folder() -> Path | None:
    """../shared/datasets/kodak when present (the test set of every figure we report)."""
    folder = DATASETS / "kodak"
    return folder if folder.is_dir() else None


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float32 (1, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.array(img, dtype=np.uint8, copy=True)).permute(2, 0, 1)[None].float().div_(255.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (1, 3, H, W) or (3, H, W) -> uint8 (H, W, 3), rounded and clamped."""
    if x.dim() == 4:
        x = x[0]
    return x.detach().clamp(0, 1).mul(255.0).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def pad_tensor(x: torch.Tensor, f: int) -> torch.Tensor:
    """Pad (B, C, H, W) on the bottom/right to multiples of f: reflect, or replicate where too small."""
    H, W = x.shape[-2:]
    ph, pw = (-H) % f, (-W) % f
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if (ph < H and pw < W) else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def crop(x: torch.Tensor, H: int, W: int) -> torch.Tensor:
    return x[..., :H, :W]
