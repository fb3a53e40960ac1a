"""An odd-file corpus made with PIL (and by hand where PIL writes no such file): every mode, the EXIF
and XMP orientations, animations, BMP and TIFF variants, broken files and a decompression bomb.

:func:`odd_files` gives ``{file name: bytes}``; :func:`write_odd_folder` writes them into an image
folder. What each file should decode to is PIL's :func:`~lightning_aug.data.decoders.load_rgb`, or a
named error where PIL cannot read it either.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

W, H = 37, 23  # odd, non-square: orientation and subsampling edges show


def _rgb(w: int = W, h: int = H) -> Image.Image:
    """Smooth, asymmetric colour ramps (orientations differ; JPEG stays close to PIL's decode)."""
    y, x = np.mgrid[0:h, 0:w]
    pixels = np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x * 3 + y * 5) % 256], -1)
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


def _ramp16() -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W]
    return (x * 1771 + y * 97).astype(np.uint16)


def _save(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def _xmp(orientation: int) -> bytes:
    return (
        b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
        b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
        b'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="%d"/></rdf:RDF></x:xmpmeta>'
        b'<?xpacket end="w"?>' % orientation
    )


def _png_with(chunks: list[tuple[bytes, bytes]]) -> bytes:
    """An RGB PNG with extra chunks before its image data."""
    plain = _save(_rgb(), "PNG")
    ihdr_end = 8 + 8 + 13 + 4
    extra = b"".join(
        struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        for kind, body in chunks
    )
    return plain[:ihdr_end] + extra + plain[ihdr_end:]


def _raw_exif_profile(orientation: int) -> bytes:
    """ImageMagick's "Raw profile type exif" text: a header, the length, then hex lines."""
    payload = _exif(orientation).tobytes()
    payload = b"Exif\x00\x00" + payload
    text = "\nexif\n" + f"{len(payload):8d}\n" + payload.hex() + "\n"
    return b"Raw profile type exif\x00" + text.encode()


def _apng_default_image() -> bytes:
    """An APNG whose default image is not part of the animation (PIL shows the default image)."""
    default = _rgb()
    frames = [Image.new("RGB", (W, H), (255, 0, 0)), Image.new("RGB", (W, H), (0, 0, 255))]
    return _save(default, "PNG", save_all=True, append_images=frames, default_image=True)


def _bmp(
    bits: int,
    width: int,
    height: int,
    pixels: bytes,
    *,
    palette: bytes = b"",
    compression: int = 0,
    masks: tuple[int, int, int] | None = None,
    gap: int = 0,
) -> bytes:
    """A Windows BMP (BITMAPINFOHEADER), written by hand: RLE, 5-6-5 bit fields, a gap before the
    pixel data, a negative (top-down) height."""
    header_size = 40 + (12 if masks else 0)
    offset = 14 + header_size + len(palette) + gap
    info = struct.pack(
        "<IiiHHIIiiII",
        40,
        width,
        height,
        1,
        bits,
        compression,
        len(pixels),
        2835,
        2835,
        len(palette) // 4,
        0,
    )
    if masks:
        info += struct.pack("<III", *masks)
    head = b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset)
    return head + info + palette + b"\x00" * gap + pixels


def _bmp_files() -> dict[str, bytes]:
    rgb = np.asarray(_rgb())
    grey_palette = b"".join(bytes((i, i, i, 0)) for i in range(256))
    grey = np.asarray(_rgb().convert("L"))
    rows_up = grey[::-1]  # bottom-up rows

    def rle8() -> bytes:
        out = b""
        for row in rows_up:
            for value in row:  # runs of one: valid RLE8, simple
                out += bytes((1, int(value)))
            out += b"\x00\x00"  # end of line
        return out + b"\x00\x01"  # end of bitmap

    def rle4() -> bytes:
        out = b""
        for row in rows_up:
            for value in row:
                nibble = int(value) >> 4
                out += bytes((1, nibble << 4 | nibble))
            out += b"\x00\x00"
        return out + b"\x00\x01"

    def padded(rows: np.ndarray, bytes_per_pixel: int) -> bytes:
        stride = (rows.shape[1] * bytes_per_pixel + 3) // 4 * 4
        return b"".join(r.tobytes().ljust(stride, b"\x00") for r in rows)

    r5 = (rgb[..., 0].astype(np.uint16) >> 3) << 11
    g6 = (rgb[..., 1].astype(np.uint16) >> 2) << 5
    b5 = rgb[..., 2].astype(np.uint16) >> 3
    rgb565 = (r5 | g6 | b5).astype("<u2")[::-1]
    palette16 = b"".join(bytes((i * 17, i * 17, i * 17, 0)) for i in range(16))
    return {
        "bmp_rle8.bmp": _bmp(8, W, H, rle8(), palette=grey_palette, compression=1),
        "bmp_rle4.bmp": _bmp(4, W, H, rle4(), palette=palette16, compression=2),
        "bmp_565.bmp": _bmp(16, W, H, padded(rgb565, 2), compression=3, masks=(0xF800, 0x07E0, 0x001F)),
        "bmp_palette_gap.bmp": _bmp(8, W, H, padded(rows_up, 1), palette=grey_palette, gap=64),
        "bmp_top_down.bmp": _bmp(24, W, -H, padded(rgb[..., ::-1], 3)),
    }


def _tiff(
    width: int,
    height: int,
    bits: tuple[int, ...],
    photometric: int,
    pixels: bytes,
    extra_samples: int | None = None,
    sample_format: int = 1,
) -> bytes:
    """An uncompressed little-endian TIFF, written by hand (bit depths and layouts PIL does not write)."""
    entries = [
        (256, 3, 1, width),
        (257, 3, 1, height),
        (258, 3, len(bits), None),  # bits per sample: filled below
        (259, 3, 1, 1),
        (262, 3, 1, photometric),
        (273, 4, 1, None),  # strip offset
        (277, 3, 1, len(bits)),
        (278, 3, 1, height),
        (279, 4, 1, len(pixels)),
        (284, 3, 1, 1),
    ]
    if extra_samples is not None:
        entries.append((338, 3, 1, extra_samples))
    if sample_format != 1:
        entries.append((339, 3, len(bits), None))
    ifd_offset = 8
    ifd_size = 2 + 12 * len(entries) + 4
    extra_at = ifd_offset + ifd_size
    bits_blob = struct.pack(f"<{len(bits)}H", *bits) if len(bits) > 2 else b""
    format_blob = struct.pack(f"<{len(bits)}H", *[sample_format] * len(bits)) if len(bits) > 2 else b""
    pixels_at = extra_at + len(bits_blob) + len(format_blob)
    out = b"II*\x00" + struct.pack("<I", ifd_offset) + struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        if tag == 258:
            field = struct.pack("<I", extra_at) if bits_blob else struct.pack("<HH", bits[0], 0)
        elif tag == 339:
            field = (
                struct.pack("<I", extra_at + len(bits_blob))
                if format_blob
                else struct.pack("<HH", sample_format, 0)
            )
        elif tag == 273:
            field = struct.pack("<I", pixels_at)
        elif kind == 3:
            field = struct.pack("<HH", value, 0)
        else:
            field = struct.pack("<I", value)
        out += struct.pack("<HHI", tag, kind, count) + field
    return out + struct.pack("<I", 0) + bits_blob + format_blob + pixels


def _tiff_files() -> dict[str, bytes]:
    rgb, files = _rgb(), {}
    for compression in ("raw", "tiff_lzw", "tiff_deflate", "tiff_adobe_deflate", "packbits", "jpeg", "lzma"):
        files[f"tiff_{compression}.tif"] = _save(rgb, "TIFF", compression=compression)
    files["tiff_group4.tif"] = _save(rgb.convert("1"), "TIFF", compression="group4")
    for mode in ("1", "L", "LA", "P", "RGBA", "CMYK", "YCbCr", "I", "F"):
        files[f"tiff_mode_{mode}.tif"] = _save(rgb.convert(mode), "TIFF")
    files["tiff_mode_I16.tif"] = _save(Image.fromarray(_ramp16()), "TIFF")
    files["tiff_float.tif"] = _save(Image.fromarray(_ramp16().astype(np.float32) / 65535.0), "TIFF")
    files["tiff_two_pages.tif"] = _save(rgb, "TIFF", save_all=True, append_images=[Image.new("RGB", (W, H))])
    grey = np.asarray(rgb.convert("L"))
    rgba16 = np.dstack([np.asarray(rgb).astype(np.uint16) * 257, np.full((H, W), 40000, np.uint16)])
    files["tiff_rgba16.tif"] = _tiff(
        W, H, (16, 16, 16, 16), 2, rgba16.astype("<u2").tobytes(), extra_samples=2
    )
    files["tiff_rgb16.tif"] = _tiff(W, H, (16, 16, 16), 2, (np.asarray(rgb).astype("<u2") * 257).tobytes())
    for bits in (2, 4):
        levels = (grey >> (8 - bits)).astype(np.uint8)
        per_byte = 8 // bits
        stride = (W + per_byte - 1) // per_byte
        packed = bytearray()
        for row in levels:
            padded_row = np.concatenate([row, np.zeros(stride * per_byte - W, np.uint8)])
            for i in range(stride):
                byte = 0
                for value in padded_row[i * per_byte : (i + 1) * per_byte]:
                    byte = byte << bits | int(value)
                packed.append(byte)
        files[f"tiff_grey{bits}.tif"] = _tiff(W, H, (bits,), 1, bytes(packed))
    files["tiff_grey12.tif"] = _tiff(W, H, (12,), 1, b"\x00" * ((W * 12 + 7) // 8 * H))
    files["tiff_float64.tif"] = _tiff(W, H, (64,), 1, (grey / 255.0).astype("<f8").tobytes(), sample_format=3)
    return files


def _jpeg_files() -> dict[str, bytes]:
    rgb = _rgb()
    files = {
        "jpeg_rgb.jpg": _save(rgb, "JPEG", quality=90),
        "jpeg_l.jpg": _save(rgb.convert("L"), "JPEG"),
        "jpeg_cmyk.jpg": _save(rgb.convert("CMYK"), "JPEG"),
        "jpeg_progressive.jpg": _save(rgb, "JPEG", progressive=True),
        "jpeg_444.jpg": _save(rgb, "JPEG", subsampling=0, quality=95),
        "jpeg_xmp_orientation_6.jpg": _save(rgb, "JPEG", xmp=_xmp(6)),
        "jpeg_exif_and_xmp.jpg": _save(rgb, "JPEG", exif=_exif(3), xmp=_xmp(6)),
    }
    for orientation in range(1, 9):
        files[f"jpeg_orientation_{orientation}.jpg"] = _save(rgb, "JPEG", exif=_exif(orientation))
    return files


def _png_files() -> dict[str, bytes]:
    rgb = _rgb()
    files = {
        f"png_mode_{mode}.png": _save(rgb.convert(mode), "PNG")
        for mode in ("1", "L", "LA", "P", "RGB", "RGBA")
    }
    files["png_mode_I16.png"] = _save(Image.fromarray(_ramp16()), "PNG")
    files["png_palette_transparent.png"] = _save(rgb.convert("P"), "PNG", transparency=0)
    files["png_palette_4bit.png"] = _save(
        rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16), "PNG", bits=4
    )
    files["png_gamma.png"] = _png_with([(b"gAMA", struct.pack(">I", 100000))])
    for orientation in (3, 6, 8):
        files[f"png_exif_orientation_{orientation}.png"] = _save(rgb, "PNG", exif=_exif(orientation))
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", _xmp(6).decode())
    files["png_xmp_orientation_6.png"] = _save(rgb, "PNG", pnginfo=info)
    files["png_raw_profile_orientation_6.png"] = _png_with([(b"tEXt", _raw_exif_profile(6))])
    files["apng_default_image.png"] = _apng_default_image()
    frames = [Image.new("RGB", (W, H), (0, 200, 0))]
    files["apng.png"] = _save(rgb, "PNG", save_all=True, append_images=frames)
    return files


def _other_files() -> dict[str, bytes]:
    rgb = _rgb()
    files = {
        "webp_lossy.webp": _save(rgb, "WEBP", quality=90),
        "webp_lossless_rgba.webp": _save(rgb.convert("RGBA"), "WEBP", lossless=True),
        "pnm_grey.pgm": _save(rgb.convert("L"), "PPM"),
        "pnm_colour.ppm": _save(rgb, "PPM"),
        "pnm_bits.pbm": _save(rgb.convert("1"), "PPM"),
        "pnm_grey16.pgm": _save(Image.fromarray(_ramp16()), "PPM"),
        "gif_still.gif": _save(rgb.convert("P"), "GIF"),
        "gif_animated.gif": _save(rgb, "GIF", save_all=True, append_images=[Image.new("RGB", (W, H))]),
    }
    for orientation in (3, 6, 8):
        files[f"webp_orientation_{orientation}.webp"] = _save(
            rgb, "WEBP", exif=_exif(orientation), lossless=True
        )
    files["webp_exif_prefixed_orientation_6.webp"] = _webp_exif_prefixed(6)
    for mode in ("1", "L", "P", "RGB", "RGBA"):
        files[f"bmp_mode_{mode}.bmp"] = _save(rgb.convert(mode), "BMP")
    return files


def _webp_exif_prefixed(orientation: int) -> bytes:
    """A WebP whose EXIF chunk starts with ``Exif\\0\\0`` (as some writers do; OpenCV then misses the
    orientation, PIL does not)."""
    data = _save(_rgb(), "WEBP", exif=_exif(orientation), lossless=True)
    at = data.index(b"EXIF")
    (size,) = struct.unpack_from("<I", data, at + 4)
    body = b"Exif\x00\x00" + data[at + 8 : at + 8 + size]
    chunk = b"EXIF" + struct.pack("<I", len(body)) + body + b"\x00" * (len(body) % 2)
    rest = data[at + 8 + size + size % 2 :]
    riff = data[12:at] + chunk + rest
    return b"RIFF" + struct.pack("<I", 4 + len(riff)) + b"WEBP" + riff


def _bomb_png(side: int = 15000) -> bytes:
    """A 1-bit PNG of ``side`` x ``side`` pixels: a few hundred KB, ``side**2 * 3`` bytes as RGB."""
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    stream = zlib.compressobj(9)
    body = b"".join(stream.compress(row) for _ in range(side)) + stream.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def _broken_files() -> dict[str, bytes]:
    jpeg, png = _save(_rgb(), "JPEG"), _save(_rgb(), "PNG")
    rng = np.random.default_rng(0)
    return {
        "broken_empty.jpg": b"",
        "broken_truncated.jpg": jpeg[: len(jpeg) // 2],
        "broken_truncated.png": png[: len(png) // 2],
        "broken_truncated.webp": _save(_rgb(), "WEBP")[:60],
        "broken_text.png": b"this is not an image\n",
        "broken_random.bmp": b"BM" + rng.integers(0, 256, 200, dtype=np.uint8).tobytes(),
        "broken_bomb.png": _bomb_png(),
        "wrong_extension_png.jpg": png,
        "wrong_extension_jpeg.png": jpeg,
    }


GROUPS: dict[str, Callable[[], dict[str, bytes]]] = {
    "jpeg": _jpeg_files,
    "png": _png_files,
    "bmp": _bmp_files,
    "tiff": _tiff_files,
    "other": _other_files,
    "broken": _broken_files,
}


def odd_files() -> dict[str, bytes]:
    """``{file name: bytes}`` of the whole corpus."""
    files: dict[str, bytes] = {}
    for make in GROUPS.values():
        files.update(make())
    return files


def write_odd_folder(root: Path, files: dict[str, bytes] | None = None) -> list[Path]:
    """Write the corpus into ``root/odd/`` (one class) and return the paths, sorted."""
    folder = root / "odd"
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in (files if files is not None else odd_files()).items():
        (folder / name).write_bytes(data)
    return sorted(folder.iterdir())
