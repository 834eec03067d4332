"""decode: every good image kind becomes upright RGB; every bad kind gets its reason."""

from __future__ import annotations

import warnings

import pytest
from PIL import Image

from keyclass.components.cleaner import decode
from tests.fixtures import images as fx


def _near(px, colour, tol: int = 60) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(px, colour, strict=True))


@pytest.mark.parametrize(
    "name,data,fmt,mode",
    [
        ("jpeg", fx.rgb_jpeg(1), "JPEG", "RGB"),
        ("png", fx.rgb_png(1), "PNG", "RGB"),
        ("rgba", fx.rgba_png(2), "PNG", "RGBA"),
        ("cmyk", fx.cmyk_jpeg(3), "JPEG", "CMYK"),
        ("gif", fx.palette_gif_transparent(4), "GIF", "P"),
        ("animated", fx.animated_gif(5), "GIF", "P"),
        ("16bit", fx.png_16bit(), "PNG", "I;16"),
        ("webp", fx.webp(6), "WEBP", "RGB"),
        ("la", fx.la_png(7), "PNG", "LA"),
        ("1bit", fx.one_bit_png(8), "PNG", "1"),
        ("tiff", fx.tiff(9), "TIFF", "RGB"),
    ],
)
def test_good_images_decode_to_rgb(name, data, fmt, mode):
    d = decode.decode(data)
    assert (d.format, d.mode) == (fmt, mode)
    assert d.image.mode == "RGB" and d.image.size == (400, 300)
    if name not in ("la", "1bit", "16bit"):
        assert _near(d.image.getpixel((2, 2)), fx.MARKER), name


@pytest.mark.parametrize(
    "data,reason",
    [
        (fx.empty(), decode.EMPTY),
        (fx.html_page(), decode.HTML),
        (fx.svg(), decode.SVG),
        (b"\x00\x01garbage" * 20, decode.NOT_AN_IMAGE),
        (fx.truncated(fx.rgb_jpeg(1)), decode.TRUNCATED),
        (fx.truncated(fx.rgb_png(1)), decode.TRUNCATED),
        (fx.decompression_bomb_png(), decode.BOMB),  # above Pillow's own hard limit
        (fx.decompression_bomb_png(10_000, 10_000), decode.BOMB),  # Pillow's warning range
        (fx.decompression_bomb_png(9_000, 9_000), decode.BOMB),  # above our cap only
    ],
)
def test_bad_images_are_refused_with_their_reason(data, reason):
    with pytest.raises(decode.DecodeError) as e:
        decode.decode(data, max_pixels=64_000_000)
    assert e.value.reason == reason


def test_pixel_cap_is_a_setting_and_the_caller_survives():
    data = fx.rgb_jpeg(1, 400, 300)
    pillow_cap, filters = Image.MAX_IMAGE_PIXELS, list(warnings.filters)
    with pytest.raises(decode.DecodeError, match="decompression_bomb"):
        decode.decode(data, max_pixels=100_000)
    for bomb in (fx.decompression_bomb_png(), fx.decompression_bomb_png(10_000, 10_000)):
        with pytest.raises(decode.DecodeError, match="decompression_bomb"):
            decode.decode(bomb, max_pixels=64_000_000)
    assert decode.decode(data, max_pixels=120_000).width == 400
    # The cap is an argument: Pillow's global limit and the warning filters are untouched.
    assert Image.MAX_IMAGE_PIXELS == pillow_cap
    assert warnings.filters == filters


def test_exif_orientation_is_applied():
    d = decode.decode(fx.exif_rotated_jpeg(3, 300, 400))
    assert d.image.size == (300, 400)
    assert _near(d.image.getpixel((3, 3)), fx.MARKER)
    assert _near(d.image.getpixel((296, 3)), fx.MARKER_TOP_RIGHT)
    assert _near(d.image.getpixel((3, 396)), fx.MARKER_BOTTOM_LEFT)


def test_animation_keeps_its_first_frame():
    d = decode.decode(fx.animated_gif(5, frames=3))
    assert d.frames == 3
    first = decode.decode(fx.encode(fx.picture(5).quantize(colors=128), "GIF")).image
    assert decode.pixel_hash(d.image) == decode.pixel_hash(first)


def test_transparency_is_white_and_16bit_is_scaled():
    for data in (fx.rgba_png(2), fx.palette_gif_transparent(4)):
        assert decode.decode(data).image.getpixel((390, 290)) == (255, 255, 255)
    grey = decode.decode(fx.png_16bit()).image
    assert grey.getpixel((0, 0)) == (0, 0, 0) and grey.getpixel((399, 0)) == (255, 255, 255)
    assert 125 <= grey.getpixel((200, 0))[0] <= 130


def test_cmyk_colours_survive():
    d = decode.decode(fx.cmyk_jpeg(3))
    assert _near(d.image.getpixel((3, 3)), (255, 0, 0), tol=30)


def test_resize_is_direct_and_square():
    pano = decode.decode(fx.rgb_jpeg(6, 1200, 250)).image
    small = decode.resize_for_model(pano, 64)
    assert small.size == (64, 64)
    assert _near(small.getpixel((1, 1)), fx.MARKER)  # no crop: every corner survives
    assert _near(small.getpixel((62, 1)), fx.MARKER_TOP_RIGHT)


def test_pixel_hash_ignores_the_encoding():
    pic = fx.picture(11)
    png = decode.decode(fx.encode(pic, "PNG")).image
    bmp = decode.decode(fx.encode(pic, "BMP")).image
    assert decode.pixel_hash(png) == decode.pixel_hash(bmp)
    assert decode.pixel_hash(png) != decode.pixel_hash(decode.decode(fx.rgb_png(12)).image)


def test_decode_to_rgb_is_the_predict_entry_point():
    assert decode.decode_to_rgb(fx.webp(1)).mode == "RGB"
    with pytest.raises(decode.DecodeError):
        decode.decode_to_rgb(fx.html_page())


@pytest.mark.parametrize(
    "data, kind",
    [
        (b"root:$6$saltsalt$secrethash:19000:0:99999:7:::\n", "text"),
        ("clé privée: s3cret\n".encode() * 40, "text"),  # 512 bytes cut inside a character
        (b"\x00SECRET\x01\x02" * 20, "binary data"),
    ],
)
def test_an_unrecognised_file_is_described_never_quoted(data, kind):
    """The detail travels into ledgers, predictions.jsonl and shared reports, and a file
    in a folder may be a link to anything the user can read: it says what the bytes
    look like, not what they are."""
    with pytest.raises(decode.DecodeError) as e:
        decode.decode(data)
    assert e.value.reason == decode.NOT_AN_IMAGE
    assert str(e.value).endswith(f"no raster format recognised ({len(data)} bytes of {kind})")
    assert all(secret not in str(e.value) for secret in ("root", "secret", "SECRET", "s3cret"))
