"""Turn an SVG into a PNG and look at the result as a person would.

drplan's charts (the recovery Gantt, the risk matrix) are hand-written SVG. Checking the
markup is not enough: a wrong ``viewBox`` or a shape drawn off-canvas still parses. So
tests rasterise the SVG with ``rsvg-convert`` (Debian ``librsvg2-bin``; ``scripts/setup``
installs it) and look at the pixels with :func:`png_stats`, a small PNG decoder in the
standard library (no Pillow needed): size, number of distinct colours, share of
non-background pixels.
"""

from __future__ import annotations

import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from drplan import process
from drplan.errors import OperationError

RSVG = "rsvg-convert"


def svg_to_png(svg_text: str, path: str | Path, *, zoom: float = 1.0, timeout: float = 60) -> Path:
    """Rasterise ``svg_text`` into the PNG file ``path`` (white background); return the path."""
    exe = shutil.which(RSVG)
    if exe is None:
        raise OperationError(
            f"{RSVG} not found: install Debian package librsvg2-bin (scripts/setup does)"
        )
    path = Path(path)
    done = process.capture(
        [exe, "--format=png", f"--zoom={zoom}", "--background-color=white", "-o", str(path)],
        input=svg_text.encode("utf-8"),
        timeout=timeout,
    )
    if done.problem is not None:
        raise OperationError(f"{RSVG} failed: {done.problem}", where=str(path))
    if done.code != 0:
        said = process.tail(done.stderr, 300) or "no message"
        raise OperationError(f"{RSVG} failed (exit {done.code}): {said}", where=str(path))
    return path


@dataclass(frozen=True)
class PngStats:
    """What a PNG looks like, roughly."""

    width: int
    height: int
    colours: int
    """Distinct colours (RGBA), counted up to 4,096."""
    ink: float
    """Share of pixels that differ from the top-left (background) pixel."""


_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def png_stats(path: str | Path) -> PngStats:
    """Decode an 8-bit, non-interlaced PNG (what rsvg-convert writes) and summarise it."""
    data = Path(path).read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG file")
    pos, idat, header = 8, bytearray(), None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        ctype = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if ctype == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif ctype == b"IDAT":
            idat += body
        elif ctype == b"IEND":
            break
    if header is None:
        raise ValueError(f"{path}: PNG without IHDR")
    width, height, depth, colour_type, _, _, interlace = header
    if depth != 8 or interlace or colour_type not in _CHANNELS:
        raise ValueError(f"{path}: only 8-bit non-interlaced PNGs are supported")
    bpp = _CHANNELS[colour_type]
    stride = width * bpp
    raw = zlib.decompress(bytes(idat))
    prev = bytearray(stride)
    colours: set[bytes] = set()
    background: bytes | None = None
    ink = 0
    for y in range(height):
        base = y * (stride + 1)
        ftype = raw[base]
        line = bytearray(raw[base + 1 : base + 1 + stride])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up = prev[i]
            if ftype == 1:
                line[i] = (line[i] + left) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + up) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + ((left + up) >> 1)) & 0xFF
            elif ftype == 4:
                upleft = prev[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + _paeth(left, up, upleft)) & 0xFF
        pixels = bytes(line)
        if background is None:
            background = pixels[:bpp]
        for x in range(0, stride, bpp):
            px = pixels[x : x + bpp]
            if px != background:
                ink += 1
            if len(colours) < 4096:
                colours.add(px)
        prev = line
    return PngStats(width, height, len(colours), ink / max(width * height, 1))
