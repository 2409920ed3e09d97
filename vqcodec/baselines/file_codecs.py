"""The classical file codecs of the baselines: JPEG, WebP, HEIC, AVIF, JPEG 2000 and JPEG XL,
encode and decode (Pillow's JPEG, WebP, AVIF and JPEG 2000; HEIC through pillow-heif's x265, the
coding tools of BPG; JPEG XL through imagecodecs' libjxl), the highest quality that fits a byte
budget, images with their encoding caches, the grey fallback image, and the worker process that
decodes corrupted files under a hard time limit. The Monte Carlo through the channels is
``vqcodec.baselines.separation``.

Quality choice
--------------
Per image, the *highest* codec quality whose file fits: JPEG quality
1..95 (``optimize=True``: optimised Huffman tables, 4:2:0), WebP quality
0..100 (``method=6``), HEIC 0..100 (4:4:4, x265 ``tune=psnr``), AVIF 0..100
(4:4:4, speed 6), JPEG 2000 0..100 (compression ratio 2^((100 - q)/8)), JPEG XL
0..100 (libjxl's quality, effort 7). The search is a binary search on quality that
assumes the file size grows with quality; it only ever returns a quality
whose file was checked to fit, and for nested budgets it returns nested
answers (a lower code rate never gets a higher quality). Encodings are
cached per (image, codec, quality) inside :class:`BaselineImage`, so pass
the same :class:`BaselineImage` objects to repeated calls. When even the
lowest quality does not fit, the (image, codec, rate) is *no-fit*: nothing
is sent and every transmission of it counts as a failure.

**Fallback image**: a uniform mid-grey image, every pixel (128, 128, 128),
of the original size: what the receiver shows when a transmission fails.

Decoding corrupted files safely
-------------------------------
Corrupted files are decoded in-process with Pillow, under these guards:
the format is forced (``formats=[...]``); the *declared* dimensions are
checked against the expected size before any pixel buffer is allocated (for
WebP by parsing the RIFF header before Pillow sees it, because Pillow's
WebP opener allocates the canvas); warnings are silenced; every exception
is caught per image and turns into the fallback. Since the file length is
bounded by the channel budget and the output size is fixed, the decoder's
work is bounded too. For a hard wall-clock limit pass ``decode_timeout``
(seconds): decoding then runs in a separate worker process (``spawn``),
which is killed and restarted when a decode overruns; an overrun counts as
a failure (fallback). With ``crc=True`` a file is only ever decoded when
its CRC matched, i.e. never a corrupted one (the clean decode is cached).

The library never prints.
"""
from __future__ import annotations

import io
import multiprocessing
import os
import warnings
from dataclasses import dataclass, field

import numpy as np

from vqcodec.images import image_name, load_image
from vqcodec.metrics import ms_ssim, psnr

#: pixel value of the fallback image (mid-grey in all three channels)
FALLBACK_VALUE = 128


# ---------------------------------------------------------------------------
# Codecs
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CodecSpec:
    """A codec from a wheel: Pillow's format name (or ``"JXL"``, imagecodecs), quality range,
    fixed save options, and whether a corrupted file may be decoded in-process.

    ``inprocess_corrupt``: JPEG and WebP have their declared size checked before any pixel
    buffer exists, so a corrupted file is decoded in-process; the others' libraries (libheif,
    libavif, OpenJPEG, libjxl) are given a corrupted file only in a separate worker process
    (``run_baseline_point`` starts one for the no-CRC receiver), so a crash or an oversized
    allocation costs a fallback image, not the run."""

    name: str
    label: str
    pil_format: str
    q_min: int
    q_max: int
    save_options: tuple = ()
    #: default quality grid of the clean RD curve (:func:`clean_rd`)
    rd_grid: tuple = ()
    inprocess_corrupt: bool = True

    @property
    def qualities(self) -> range:
        return range(self.q_min, self.q_max + 1)


#: seconds a worker may spend on one corrupted file of a codec without ``inprocess_corrupt``
WORKER_DECODE_TIMEOUT = 20.0

CODECS: dict[str, CodecSpec] = {
    "jpeg": CodecSpec("jpeg", "JPEG", "JPEG", 1, 95, (("optimize", True),),
                      tuple(range(1, 21)) + tuple(range(22, 41, 2)) + tuple(range(45, 96, 5))),
    "webp": CodecSpec("webp", "WebP", "WEBP", 0, 100, (("method", 6),),
                      tuple(range(0, 21, 2)) + tuple(range(25, 101, 5))),
    # HEVC intra through x265 (pillow-heif): BPG's coding tools; 4:4:4 and x265's PSNR tuning
    "heic": CodecSpec("heic", "HEIC (x265)", "HEIF", 0, 100, (("chroma", 444), ("enc_params", (("tune", "psnr"),))),
                      tuple(range(2, 62, 3)) + (66, 72, 80, 90), inprocess_corrupt=False),
    # AV1 intra through libavif (Pillow >= 11.3), 4:4:4
    "avif": CodecSpec("avif", "AVIF", "AVIF", 0, 100, (("subsampling", "4:4:4"), ("speed", 6)),
                      tuple(range(4, 96, 4)), inprocess_corrupt=False),
    # OpenJPEG (Pillow), 9/7 wavelet; quality q asks for compression ratio 2 ** ((100 - q) / 8)
    "jpeg2000": CodecSpec("jpeg2000", "JPEG 2000", "JPEG2000", 0, 100, (("irreversible", True), ("no_jp2", True)),
                          tuple(range(20, 84, 3)), inprocess_corrupt=False),
    # libjxl through imagecodecs, quality level 0..100, effort 7
    "jpegxl": CodecSpec("jpegxl", "JPEG XL", "JXL", 0, 100, (("effort", 7),),
                        tuple(range(4, 97, 4)), inprocess_corrupt=False),
}


def jpeg2000_ratio(quality: int) -> float:
    """The compression ratio OpenJPEG is asked for at our JPEG 2000 quality 0..100 (9% per step)."""
    return 2.0 ** ((100 - int(quality)) / 8.0)


def _codec(name) -> CodecSpec:
    if isinstance(name, CodecSpec):
        return name
    try:
        return CODECS[str(name).lower()]
    except KeyError:
        raise ValueError(f"unknown codec {name!r}; known codecs: {', '.join(CODECS)}") from None


def rd_qualities(codec) -> tuple:
    """Default quality grid of ``codec``'s clean RD curve."""
    return _codec(codec).rd_grid


def _register_heif() -> None:
    import pillow_heif  # pillow-heif (~0.15 s to import) only for HEIF

    pillow_heif.register_heif_opener()


def _save_options(spec: CodecSpec, q: int) -> dict:
    """Keyword options of Pillow's save for ``spec`` at quality ``q`` (fresh dicts: pillow-heif
    writes into ``enc_params``)."""
    opts = {k: (dict(v) if k == "enc_params" else v) for k, v in spec.save_options}
    if spec.pil_format == "JPEG2000":
        return {**opts, "quality_mode": "rates", "quality_layers": [jpeg2000_ratio(q)]}
    return {**opts, "quality": q}


def encode_file(image: np.ndarray, codec, quality: int) -> bytes:
    """Encode a uint8 (H, W, 3) image with ``codec`` (a name in :data:`CODECS`) at ``quality``."""
    from PIL import Image  # Pillow (~0.13 s to import) only to read or write files

    spec = _codec(codec)
    q = int(quality)
    if not spec.q_min <= q <= spec.q_max:
        raise ValueError(f"{spec.label} quality must be in [{spec.q_min}, {spec.q_max}], got {quality!r}")
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if spec.pil_format == "JXL":
        import imagecodecs  # imagecodecs only for JPEG XL

        return bytes(imagecodecs.jpegxl_encode(image, q, numthreads=1, **dict(spec.save_options)))
    if spec.pil_format == "HEIF":
        _register_heif()
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, spec.pil_format, **_save_options(spec, q))
    return buf.getvalue()


def _webp_declared_size(data: bytes) -> tuple[int, int]:
    """(width, height) declared by a WebP file's first chunk; ValueError if unparsable."""
    if len(data) < 30 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("not a WebP RIFF header")
    tag = data[12:16]
    if tag == b"VP8X":
        w = 1 + int.from_bytes(data[24:27], "little")
        h = 1 + int.from_bytes(data[27:30], "little")
    elif tag == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise ValueError("bad VP8 start code")
        w = int.from_bytes(data[26:28], "little") & 0x3FFF
        h = int.from_bytes(data[28:30], "little") & 0x3FFF
    elif tag == b"VP8L":
        if data[20] != 0x2F:
            raise ValueError("bad VP8L signature")
        v = int.from_bytes(data[21:25], "little")
        w = 1 + (v & 0x3FFF)
        h = 1 + ((v >> 14) & 0x3FFF)
    else:
        raise ValueError(f"unexpected WebP chunk {tag!r}")
    return w, h


def decode_file(data: bytes, codec, height: int, width: int) -> np.ndarray:
    """Decode a (possibly corrupted) file -> uint8 (height, width, 3); raises on anything wrong.

    Guards: the format is forced; the declared size must equal (width,
    height) before pixels are allocated; warnings are silenced.
    """
    from PIL import Image  # Pillow (~0.13 s to import) only to read or write files

    spec = _codec(codec)
    data = bytes(data)
    if spec.pil_format == "JXL":
        import imagecodecs  # imagecodecs only for JPEG XL

        arr = np.asarray(imagecodecs.jpegxl_decode(data, numthreads=1))
        if arr.shape != (height, width, 3) or arr.dtype != np.uint8:
            raise ValueError(f"decoded {arr.dtype} {arr.shape} does not match {(height, width, 3)}")
        return np.ascontiguousarray(arr)
    if spec.pil_format == "HEIF":
        _register_heif()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if spec.pil_format == "WEBP" and _webp_declared_size(data) != (width, height):
            raise ValueError("declared WebP size does not match")
        with Image.open(io.BytesIO(data), formats=[spec.pil_format]) as im:
            if im.size != (width, height):
                raise ValueError(f"declared size {im.size} does not match {(width, height)}")
            im.load()
            rgb = im.convert("RGB")
            arr = np.asarray(rgb, dtype=np.uint8)
    if arr.shape != (height, width, 3):
        raise ValueError(f"decoded shape {arr.shape} does not match")
    return np.ascontiguousarray(arr)


def fallback_image(height: int, width: int) -> np.ndarray:
    """The fallback shown when a transmission fails: uniform mid-grey (128, 128, 128)."""
    return np.full((int(height), int(width), 3), FALLBACK_VALUE, np.uint8)


def decode_or_fallback(data: bytes, codec, height: int, width: int) -> tuple[np.ndarray, bool]:
    """:func:`decode_file` that never raises: (image, True), or (fallback image, False)."""
    try:
        return decode_file(data, codec, height, width), True
    except Exception:  # noqa: BLE001 - any broken file gives the fallback
        return fallback_image(height, width), False


# ---------------------------------------------------------------------------
# Images with their encoding caches
# ---------------------------------------------------------------------------


@dataclass
class _Encoding:
    data: bytes
    psnr: float | None = None
    ms_ssim: float | None = None


@dataclass(eq=False)
class BaselineImage:
    """An image (uint8 (H, W, 3)) with its name and per-(codec, quality) encoding cache."""

    name: str
    image: np.ndarray
    _cache: dict = field(default_factory=dict, repr=False)
    _grey: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        a = np.asarray(self.image)
        if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8 or a.shape[0] < 1 or a.shape[1] < 1:
            raise ValueError(f"{self.name}: expected a uint8 (H, W, 3) image, got {a.dtype} {a.shape}")
        self.image = np.ascontiguousarray(a)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.image.shape[0]), int(self.image.shape[1])

    @property
    def pixels(self) -> int:
        return self.shape[0] * self.shape[1]

    def encoding(self, codec, quality: int) -> _Encoding:
        spec = _codec(codec)
        key = (spec.name, int(quality))
        enc = self._cache.get(key)
        if enc is None:
            enc = self._cache[key] = _Encoding(encode_file(self.image, spec, quality))
        return enc

    def file(self, codec, quality: int) -> bytes:
        return self.encoding(codec, quality).data

    def file_bytes(self, codec, quality: int) -> int:
        return len(self.encoding(codec, quality).data)

    def clean_metrics(self, codec, quality: int, with_ms_ssim: bool = False) -> tuple[float, float | None]:
        """(PSNR, MS-SSIM or None) of the clean decode at ``quality`` (cached)."""

        enc = self.encoding(codec, quality)
        if enc.psnr is None or (with_ms_ssim and enc.ms_ssim is None):
            H, W = self.shape
            out = decode_file(enc.data, codec, H, W)
            enc.psnr = psnr(self.image, out)
            if with_ms_ssim:
                enc.ms_ssim = ms_ssim(self.image, out)
        return enc.psnr, (enc.ms_ssim if with_ms_ssim else None)

    def fallback_metrics(self, with_ms_ssim: bool = False) -> tuple[float, float | None]:
        """(PSNR, MS-SSIM or None) of the grey fallback (cached)."""

        if "psnr" not in self._grey or (with_ms_ssim and "ms_ssim" not in self._grey):
            grey = fallback_image(*self.shape)
            self._grey["psnr"] = psnr(self.image, grey)
            if with_ms_ssim:
                self._grey["ms_ssim"] = ms_ssim(self.image, grey)
        return self._grey["psnr"], (self._grey["ms_ssim"] if with_ms_ssim else None)


def as_baseline_images(images) -> list[BaselineImage]:
    """Normalise images: BaselineImage objects (kept, caches and all), paths (loaded with
    :func:`vqcodec.images.load_image`, named by file name), ``(name, array)`` pairs, or
    bare uint8 arrays (named ``image0``, ``image1``, ...)."""
    if isinstance(images, (BaselineImage, str, os.PathLike, np.ndarray)):
        images = [images]
    out = []
    for i, item in enumerate(images):
        if isinstance(item, BaselineImage):
            out.append(item)
        elif isinstance(item, (str, os.PathLike)):
            out.append(BaselineImage(image_name(item), load_image(item)))
        elif isinstance(item, tuple) and len(item) == 2:
            out.append(BaselineImage(str(item[0]), np.asarray(item[1])))
        else:
            out.append(BaselineImage(f"image{i}", np.asarray(item)))
    if not out:
        raise ValueError("no images")
    names = [im.name for im in out]
    if len(set(names)) != len(names):
        raise ValueError("image names must be unique (they seed the channel realisations)")
    return out


def choose_quality(image: BaselineImage, codec, max_bytes: int) -> int | None:
    """Highest quality whose file has at most ``max_bytes`` bytes (binary search); None if none fits."""
    spec = _codec(codec)
    if max_bytes < 0 or image.file_bytes(spec, spec.q_min) > max_bytes:
        return None
    lo, hi = spec.q_min, spec.q_max + 1  # lo fits, hi is a sentinel that does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if image.file_bytes(spec, mid) <= max_bytes:
            lo = mid
        else:
            hi = mid
    return lo


# ---------------------------------------------------------------------------
# Hard time limit: decoding in a worker process
# ---------------------------------------------------------------------------


class DecodeTimeout(RuntimeError):
    """A decode that overran ``decode_timeout`` (the worker was killed)."""


def _worker_main(conn) -> None:  # pragma: no cover - runs in the child process
    conn.send(("ready", None))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        data, codec, H, W = job
        try:
            conn.send(("ok", decode_file(data, codec, H, W)))
        except BaseException as exc:  # noqa: BLE001 - report every failure
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class _DecodeWorker:
    """A persistent decoding process, killed and restarted when a decode overruns."""

    def __init__(self, timeout: float, startup_timeout: float = 120.0):
        self.timeout = float(timeout)
        self.startup_timeout = startup_timeout
        self._ctx = multiprocessing.get_context("spawn")
        self._proc = None
        self._conn = None

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=_worker_main, args=(child,), daemon=True)
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        if not parent.poll(self.startup_timeout):
            self.close()
            raise RuntimeError("decode worker did not start")
        parent.recv()

    def decode(self, data: bytes, codec: str, H: int, W: int) -> np.ndarray:
        if self._proc is None or not self._proc.is_alive():
            self.close()
            self._start()
        self._conn.send((bytes(data), codec, H, W))
        if not self._conn.poll(self.timeout):
            self.close()
            raise DecodeTimeout(f"decode took longer than {self.timeout:g} s")
        status, payload = self._conn.recv()
        if status != "ok":
            raise ValueError(payload)
        return payload

    def close(self) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if proc is not None:
            if proc.is_alive():
                proc.kill()
            proc.join(5)
        if conn is not None:
            conn.close()
