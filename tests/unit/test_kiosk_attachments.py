"""Photographed and uploaded materials at the kiosk: real images made with Pillow, checked by
their bytes, compressed under the limits, staged between the wizard's posts."""

from __future__ import annotations

import base64
import io
import os
import time
from pathlib import Path

import pytest
from PIL import Image

from sync.filters import attachment_problem
from village_node.attachments import (
    MAX_CASE_BYTES,
    MAX_EDGE,
    MAX_FILE_BYTES,
    MAX_FILES_PER_MATERIAL,
    AttachmentRefused,
    Prepared,
    prepare,
    prune,
    sniff,
    staging,
)
from village_node.errors import KioskError

KEY = "0123456789abcdef01234567"


def photo(width: int = 4000, height: int = 3000, orientation: int | None = None) -> bytes:
    """A camera-like JPEG: noisy (hard to compress), high quality, with EXIF."""
    image = Image.effect_noise((width, height), 40).convert("RGB")
    image.paste((200, 30, 30), (0, 0, width // 4, height // 4))  # a red top-left corner
    exif = Image.Exif()
    exif[0x010F] = "VillagePhone"  # Make
    exif[0x0132] = "2026:12:01 09:30:00"  # DateTime
    if orientation is not None:
        exif[0x0112] = orientation
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95, exif=exif.tobytes())
    return out.getvalue()


def screenshot() -> bytes:
    """A PNG screenshot: flat colours and sharp edges, with an alpha channel."""
    image = Image.new("RGBA", (1920, 1080), (255, 255, 255, 255))
    for y in range(0, 1080, 40):
        image.paste((20, 40, 90, 255), (100, y, 1800, y + 12))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def pdf(size: int) -> bytes:
    """A PDF-looking file of ``size`` bytes."""
    head = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
    return head + b"0" * (size - len(head) - 6) + b"%%EOF\n"


def test_files_are_known_by_their_bytes() -> None:
    assert sniff(photo(64, 48)) == "jpeg"
    assert sniff(screenshot()) == "png"
    assert sniff(pdf(100)) == "pdf"
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "webp"
    assert sniff(b"\x00\x00\x00\x18ftypheic\x00\x00") == "heic"
    assert sniff(b"just some text pretending to be a photo") is None


def test_a_big_camera_photo_is_compressed_under_the_limit() -> None:
    raw = photo()
    assert len(raw) > 3 * MAX_FILE_BYTES  # far over the limit as taken
    started = time.monotonic()
    done = prepare(raw, "IMG_0001.JPG")
    assert time.monotonic() - started < 5
    assert done.content_type == "image/jpeg" and done.extension == "jpg"
    assert len(done.data) <= MAX_FILE_BYTES
    with Image.open(io.BytesIO(done.data)) as image:
        assert image.format == "JPEG" and image.size == (MAX_EDGE, 1200)
        assert not image.getexif()  # camera, time and GPS fields are gone
        assert "icc_profile" not in image.info


def test_the_exif_orientation_is_applied() -> None:
    done = prepare(photo(800, 600, orientation=6), "portrait.jpg")  # rotate 90° clockwise
    with Image.open(io.BytesIO(done.data)) as image:
        assert image.size == (600, 800)
        assert not image.getexif()  # no orientation left to apply twice
        rgb = image.convert("RGB")
        # The red corner was top-left as stored; turned clockwise it is top-right.
        red, green, _ = rgb.getpixel((600 - 20, 20))  # type: ignore[misc]
        assert red > 150 and green < 100
        left = rgb.getpixel((20, 20))
        assert isinstance(left, tuple) and left[0] < 150


def test_a_png_screenshot_stays_sharp_and_small() -> None:
    done = prepare(screenshot(), "截图.png")
    assert done.content_type == "image/png" and len(done.data) <= MAX_FILE_BYTES
    with Image.open(io.BytesIO(done.data)) as image:
        assert max(image.size) == MAX_EDGE and image.mode in ("RGB", "P", "L")


def test_a_noisy_png_becomes_a_jpeg() -> None:
    out = io.BytesIO()
    Image.effect_noise((2400, 1800), 60).convert("RGB").save(out, "PNG")
    done = prepare(out.getvalue(), "scan.png")
    assert done.content_type == "image/jpeg" and len(done.data) <= MAX_FILE_BYTES


def test_a_text_file_named_jpg_is_refused() -> None:
    with pytest.raises(AttachmentRefused, match="不是照片或 PDF 文件"):
        prepare("这不是照片, 是一段文字".encode(), "身份证.jpg")


def test_a_truncated_jpeg_is_refused() -> None:
    with pytest.raises(AttachmentRefused, match="损坏"):
        prepare(photo(400, 300)[:200], "half.jpg")


def test_empty_and_heic_files_are_refused_in_plain_words() -> None:
    with pytest.raises(AttachmentRefused, match="空文件"):
        prepare(b"", "a.jpg")
    with pytest.raises(AttachmentRefused, match="HEIC"):
        prepare(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64, "IMG.HEIC")


def test_a_pdf_is_kept_as_is_within_the_limit_and_refused_above() -> None:
    small = pdf(200_000)
    assert prepare(small, "合同.pdf") == Prepared(small, "application/pdf")
    with pytest.raises(AttachmentRefused, match="PDF, 超过 1.0 MB"):
        prepare(pdf(MAX_FILE_BYTES + 1), "扫描件.pdf")


def test_staging_keeps_files_between_posts_and_names_them_for_the_case(tmp_path: Path) -> None:
    stage = staging(tmp_path, KEY)
    first = stage.add("id_card", "front.jpg", prepare(photo(800, 600), "front.jpg"))
    stage.add("id_card", "back.png", prepare(screenshot(), "back.png"))
    stage.add("application", "../../etc/申请书.pdf", Prepared(pdf(5000), "application/pdf"))
    again = staging(tmp_path, KEY)  # the next post
    grouped = again.by_material()
    assert [f.filename for f in grouped["id_card"]] == ["front.jpg", "back.png"]
    assert grouped["application"][0].filename == "申请书.pdf"  # no path from the browser
    assert first.size_label.endswith("KB")
    atts = again.attachments()
    assert list(atts) == [
        "material/id_card/1.jpg",
        "material/id_card/2.png",
        "material/application/1.pdf",
    ]
    assert atts["material/id_card/2.png"]["content_type"] == "image/png"
    assert base64.b64decode(atts["material/application/1.pdf"]["data"]) == pdf(5000)
    assert attachment_problem({"type": "case", "_attachments": atts}) is None
    again.remove([first.id, "not-an-id"])
    assert list(again.attachments())[0] == "material/id_card/1.png"
    again.clear()
    assert again.files() == [] and not (tmp_path / "uploads" / KEY).exists()


def test_too_many_files_of_one_material_are_refused(tmp_path: Path) -> None:
    stage = staging(tmp_path, KEY)
    small = prepare(photo(320, 240), "p.jpg")
    for _ in range(MAX_FILES_PER_MATERIAL):
        stage.add("id_card", "p.jpg", small)
    with pytest.raises(AttachmentRefused, match=f"最多 {MAX_FILES_PER_MATERIAL} 个文件"):
        stage.add("id_card", "p7.jpg", small)
    stage.add("application", "p.jpg", small)  # another material still takes files
    assert len(stage.files()) == MAX_FILES_PER_MATERIAL + 1


def test_the_whole_case_is_limited(tmp_path: Path) -> None:
    stage = staging(tmp_path, KEY)
    big = Prepared(pdf(MAX_FILE_BYTES), "application/pdf")
    for i in range(MAX_CASE_BYTES // MAX_FILE_BYTES):
        stage.add(f"m{i}", "a.pdf", big)
    with pytest.raises(AttachmentRefused, match="合计不能超过 8.0 MB"):
        stage.add("last", "a.pdf", big)


def test_intake_keys_and_material_keys_are_checked(tmp_path: Path) -> None:
    for key in ("../../etc", "", "ABCDEF0123456789", "0123"):
        with pytest.raises(KioskError, match="表单编号无效"):
            staging(tmp_path, key)
    with pytest.raises(AttachmentRefused):
        staging(tmp_path, KEY).add("../x", "a.pdf", Prepared(pdf(100), "application/pdf"))


def test_stale_staging_folders_are_pruned(tmp_path: Path) -> None:
    old, fresh = staging(tmp_path, "a" * 24), staging(tmp_path, "b" * 24)
    for stage in (old, fresh):
        stage.add("id_card", "a.pdf", Prepared(pdf(100), "application/pdf"))
    two_days_ago = time.time() - 2 * 86400
    os.utime(old.folder, (two_days_ago, two_days_ago))
    (tmp_path / "uploads" / "not-a-key").mkdir()
    assert prune(tmp_path) == 1
    assert not old.folder.exists() and fresh.folder.exists()
    assert (tmp_path / "uploads" / "not-a-key").exists()  # only staging folders are touched
