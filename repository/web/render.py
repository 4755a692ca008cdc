"""One frame of a stored instance rendered as a consumer image (PS3.18 8.3.5, 10.4).

The frame is decoded by pydicom's pixel data handlers, then turned into display values as
PS3.3 C.11 says: for grayscale, the Modality LUT (or rescale) and then the VOI LUT (the window
the request names, else the instance's VOI LUT Sequence, else its first window, else the frame's
full range), MONOCHROME1 inverted; palette color through its palette; RGB (and YBR, which pydicom
converts to RGB) as it is. The 8-bit result is cut and scaled to the viewport and encoded by
Pillow as JPEG or PNG.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.processing import (
    apply_color_lut,
    apply_modality_lut,
    apply_voi,
    apply_windowing,
)
from pydicom.pixels.utils import pixel_array
from pydicom.uid import UID

from ..errors import InvalidValueError, RepositoryError
from .frames import check_decoded_size

JPEG = "image/jpeg"
PNG = "image/png"
GRAYSCALE = ("MONOCHROME1", "MONOCHROME2")
COLOR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT")
Pixels = np.ndarray[Any, np.dtype[np.uint8]]


class CannotRender(RepositoryError):
    """Raised when a frame cannot be rendered here (its syntax or photometric interpretation)."""


class OutsideImage(InvalidValueError):
    """Raised when a viewport's source rectangle does not overlap the image."""


@dataclass(frozen=True)
class Window:
    """A VOI window: center, width and VOI LUT function (``LINEAR``, ``LINEAR_EXACT``,
    ``SIGMOID``) as PS3.3 C.11.2.1.2 defines them."""

    center: float
    width: float
    function: str = "LINEAR"


@dataclass(frozen=True)
class Viewport:
    """The size to fit the image in, and optionally the source rectangle to cut first
    (``sx, sy, sw, sh``; a negative width or height flips the image, PS3.18 8.3.5.1.3; the
    part outside the image is left out)."""

    width: int
    height: int
    source: tuple[int, int, int, int] | None = None


@dataclass(frozen=True)
class Rendering:
    """How to render: media type, window, viewport and JPEG quality (1-100)."""

    media_type: str = JPEG
    window: Window | None = None
    viewport: Viewport | None = None
    quality: int = 90


def _read(path: Path, index: int) -> tuple[Dataset, np.ndarray[Any, Any]]:
    """The instance's attributes (large values not read) and its frame ``index`` (from 0)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, defer_size=4096, force=True)  # large values left unread
        if not any(t in ds for t in (0x7FE00008, 0x7FE00009, 0x7FE00010)):
            raise CannotRender("the instance has no pixel data (Pixel Data or Float Pixel Data)")
        check_decoded_size(ds, path.name)
        meta = getattr(ds, "file_meta", None)
        syntax = UID(str(getattr(meta, "TransferSyntaxUID", None) or "1.2.840.10008.1.2"))
        if syntax.is_compressed:
            try:
                available = get_decoder(syntax).is_available
            except NotImplementedError:
                available = False
            if not available:
                raise CannotRender(f"no pixel data decoder for {syntax.name} ({syntax}) here")
        return ds, pixel_array(str(path), index=index)


def _windowed(values: np.ndarray[Any, Any], window: Window) -> np.ndarray[Any, Any]:
    """``values`` through ``window``, onto 0-255 (pydicom's windowing, 8-bit output range)."""
    voi = Dataset()
    voi.WindowCenter, voi.WindowWidth = window.center, window.width
    voi.VOILUTFunction = window.function
    voi.BitsStored, voi.PixelRepresentation = 8, 0
    voi.PhotometricInterpretation = "MONOCHROME2"
    windowed: np.ndarray[Any, Any] = apply_windowing(values, voi)
    return windowed


def _stretched(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    low, high = float(values.min()), float(values.max())
    return (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)


def _dataset_window(ds: Dataset) -> Window | None:
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return None
    center, width = ds["WindowCenter"], ds["WindowWidth"]
    if center.VM == 0 or width.VM == 0:
        return None
    first = [float(e.value[0] if e.VM > 1 else e.value) for e in (center, width)]
    function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
    minimum = 1 if function == "LINEAR" else 0
    return Window(first[0], first[1], function) if first[1] > minimum else None


def _grayscale(arr: np.ndarray[Any, Any], ds: Dataset, window: Window | None) -> Pixels:
    values = np.asarray(apply_modality_lut(arr, ds), dtype=np.float64)
    if window is not None:
        shown = _windowed(values, window)
    elif ds.get("VOILUTSequence"):
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        looked_up: np.ndarray[Any, Any] = apply_voi(np.rint(values).astype(np.int64), ds)
        shown = looked_up * (255.0 / (2**bits - 1))
    elif (own := _dataset_window(ds)) is not None:
        shown = _windowed(values, own)
    else:
        shown = _stretched(values)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        shown = 255.0 - shown
    out: Pixels = np.clip(np.rint(shown), 0, 255).astype(np.uint8)
    return out


def _color(arr: np.ndarray[Any, Any], ds: Dataset) -> Pixels:
    if ds.PhotometricInterpretation == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
        bits = 8 if arr.dtype == np.uint8 else 16
    else:
        bits = int(ds.get("BitsStored", ds.BitsAllocated))
    if bits > 8:
        arr = arr >> (bits - 8)
    return np.asarray(arr, dtype=np.uint8)


def display_values(path: Path, index: int, window: Window | None = None) -> Pixels:
    """Frame ``index`` (from 0) of the file as 8-bit display values (H x W, or H x W x 3)."""
    ds, arr = _read(path, index)
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if photometric in GRAYSCALE and int(ds.get("SamplesPerPixel", 1)) == 1:
        return _grayscale(arr, ds, window)
    if photometric in (*COLOR, "PALETTE COLOR"):
        return _color(arr, ds)
    raise CannotRender(f"pixel data of photometric interpretation {photometric!r} is not rendered")


def _fit(image: Image.Image, viewport: Viewport) -> Image.Image:
    if viewport.source is not None:
        sx, sy, sw, sh = viewport.source
        left, right = sorted(max(0, min(x, image.width)) for x in (sx, sx + sw))
        top, bottom = sorted(max(0, min(y, image.height)) for y in (sy, sy + sh))
        if left == right or top == bottom:
            raise OutsideImage(
                f"the viewport's source rectangle {viewport.source} lies outside the "
                f"{image.width} x {image.height} image"
            )
        image = image.crop((left, top, right, bottom))
        if sw < 0:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if sh < 0:
            image = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    scale = min(viewport.width / image.width, viewport.height / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image if size == image.size else image.resize(size, Image.Resampling.BILINEAR)


def encode(pixels: Pixels, rendering: Rendering) -> bytes:
    """Display values as a JPEG or PNG image, fitted to the rendering's viewport."""
    image = Image.fromarray(pixels)
    if rendering.viewport is not None:
        image = _fit(image, rendering.viewport)
    out = io.BytesIO()
    if rendering.media_type == PNG:
        image.save(out, "PNG", compress_level=3)
    else:
        image.save(out, "JPEG", quality=rendering.quality)
    return out.getvalue()


def render(path: Path, index: int, rendering: Rendering) -> bytes:
    """Frame ``index`` (from 0) of the file at ``path`` rendered as ``rendering`` says."""
    return encode(display_values(path, index, rendering.window), rendering)
