"""Materials photographed or uploaded at the kiosk: checked, compressed, staged, attached.

A file is judged by its bytes, never by its declared name or type: JPEG, PNG, WebP (and HEIC
where Pillow reads it) are images, re-encoded with the EXIF orientation applied, the long edge
at most ``MAX_EDGE`` pixels and every metadata field (EXIF, GPS, ICC) dropped — as JPEG, or as
PNG for a PNG that stays small (a screenshot keeps its text sharp). A PDF is kept as it is.
What the case document may carry is limited by ``sync.design`` (the township's rule refuses
the rest), so the kiosk refuses early, in words an agent can act on.

The wizard posts twice (review, then save): files chosen at either post are staged under
``<data>/uploads/<intake key>/`` with an ``index.json``, listed on the form, and attached to
the case document when it is saved; the folder is removed after the save, and folders left by
abandoned forms are pruned after a day.
"""

from __future__ import annotations

import base64
import io
import json
import re
import secrets
import shutil
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from sync.design import ATTACHMENT_TYPES, MAX_ATTACHMENT_BYTES, MAX_CASE_ATTACHMENT_BYTES
from village_node.errors import KioskError

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_CASE_BYTES",
    "MAX_FILES_PER_MATERIAL",
    "MAX_UPLOAD_BYTES",
    "MAX_EDGE",
    "JPEG_QUALITY",
    "STALE_AFTER",
    "AttachmentRefused",
    "Prepared",
    "StagedFile",
    "Staging",
    "sniff",
    "prepare",
    "staging",
    "prune",
    "size_label",
]

# Limits. The stored ones are the township's (sync.design): one file after compression, and all
# of one case together, which travels in one request over a village's mobile link.
MAX_FILE_BYTES = MAX_ATTACHMENT_BYTES
"""One stored file (1 MB): a PDF above it is refused, an image is compressed under it."""
MAX_CASE_BYTES = MAX_CASE_ATTACHMENT_BYTES
"""All files of one case (8 MB)."""
MAX_FILES_PER_MATERIAL = 6
"""Files per material: enough for both sides of a card and a few pages of a contract."""
MAX_UPLOAD_BYTES = 30 * 1024 * 1024
"""One file as chosen, before compression (a 50-megapixel phone photo is about 20 MB)."""
MAX_PIXELS = 100_000_000
"""Images larger than this are refused before decoding (a decompression bomb, not a photo)."""
MAX_EDGE = 1600
"""The long edge of a stored image, in pixels: a document photo stays legible."""
JPEG_QUALITY = 80
STALE_AFTER = 24 * 3600
"""Seconds after which a staging folder of an unsaved form is pruned."""

_KEY = re.compile(r"^[0-9a-f]{16,64}$")
_MATERIAL = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_FILE_ID = re.compile(r"^[0-9a-f]{16}$")
_EXTENSION = dict(zip(ATTACHMENT_TYPES, ("jpg", "png", "pdf"), strict=True))
_lock = threading.Lock()  # one kiosk process: staging indexes are edited one at a time


class AttachmentRefused(KioskError):
    """A file the kiosk does not take (wrong kind, too large, too many); says why in Chinese."""


def size_label(size: int) -> str:
    """A size as an agent reads it: ``820 KB``, ``1.2 MB``."""
    if size < 1024 * 1024:
        return f"{max(1, round(size / 1024))} KB"
    return f"{size / 1024 / 1024:.1f} MB"


# --- one file ---------------------------------------------------------------------------------


def sniff(data: bytes) -> str | None:
    """The file's real kind from its first bytes: jpeg, png, webp, heic, pdf, or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[4:8] == b"ftyp" and data[8:12] in {b"heic", b"heix", b"hevc", b"heim", b"heis",
                                                b"hevm", b"hevs", b"mif1", b"msf1"}:  # fmt: skip
        return "heic"
    if data[:1024].lstrip().startswith(b"%PDF-"):
        return "pdf"
    return None


@dataclass(frozen=True)
class Prepared:
    """A file ready to store: its bytes and real content type."""

    data: bytes
    content_type: str

    @property
    def extension(self) -> str:
        """``jpg``, ``png`` or ``pdf``."""
        return _EXTENSION[self.content_type]


def prepare(data: bytes, filename: str = "") -> Prepared:
    """Check one chosen file and make it storable; AttachmentRefused says why not."""
    shown = f"“{filename}”" if filename else "该文件"
    if not data:
        raise AttachmentRefused(f"{shown}是空文件, 请重新拍照或选择")
    if len(data) > MAX_UPLOAD_BYTES:
        raise AttachmentRefused(f"{shown}太大 ({size_label(len(data))}), 请重新拍照或选择")
    kind = sniff(data)
    if kind == "pdf":
        if len(data) > MAX_FILE_BYTES:
            raise AttachmentRefused(
                f"{shown}是 {size_label(len(data))} 的 PDF, 超过 {size_label(MAX_FILE_BYTES)}"
                " 的上限; 请改为逐页拍照上传"
            )
        return Prepared(data, "application/pdf")
    if kind is None:
        raise AttachmentRefused(f"{shown}不是照片或 PDF 文件 (只收 JPEG、PNG、WebP 图片和 PDF)")
    return _image(data, kind, shown)


def _image(data: bytes, kind: str, shown: str) -> Prepared:
    try:
        with Image.open(io.BytesIO(data)) as opened:
            if opened.width * opened.height > MAX_PIXELS:
                raise AttachmentRefused(f"{shown}的像素过多, 请用普通拍照模式重拍")
            if kind == "jpeg":  # decode at a reduced scale when the photo is much larger
                scale = MAX_EDGE / max(opened.size)
                opened.draft("RGB", (int(opened.width * scale), int(opened.height * scale)))
            image = ImageOps.exif_transpose(opened)
            image.load()
    except AttachmentRefused:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        if kind == "heic":
            raise AttachmentRefused(
                f"{shown}是 HEIC 格式, 本机读不了; 请把手机相机设置为“兼容性最佳”(JPEG) 后重拍"
            ) from exc
        raise AttachmentRefused(f"{shown}已损坏或不是完整的图片, 请重新拍照") from exc
    image.thumbnail((MAX_EDGE, MAX_EDGE), Image.Resampling.LANCZOS)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.new("RGB", rgba.size, "white")
        image.paste(rgba, mask=rgba.getchannel("A"))
    if kind == "png":  # screenshots: sharp text as PNG when that stays small
        flat = image if image.mode in ("1", "L", "P", "RGB") else image.convert("RGB")
        out = io.BytesIO()
        flat.save(out, "PNG", optimize=True)
        if out.tell() <= MAX_FILE_BYTES // 2:
            return Prepared(out.getvalue(), "image/png")
    image = image.convert("RGB")
    for edge in (MAX_EDGE, 1280, 1024, 800):
        if max(image.size) > edge:
            image.thumbnail((edge, edge), Image.Resampling.LANCZOS)
        for quality in (JPEG_QUALITY, 70, 60, 50):
            out = io.BytesIO()
            image.save(out, "JPEG", quality=quality, optimize=True, progressive=True)
            if out.tell() <= MAX_FILE_BYTES:
                return Prepared(out.getvalue(), "image/jpeg")
    raise AttachmentRefused(f"{shown}压缩后仍超过 {size_label(MAX_FILE_BYTES)}, 请重新拍照")


# --- staging between the wizard's posts ---------------------------------------------------------


@dataclass(frozen=True)
class StagedFile:
    """One staged file of a material."""

    id: str
    material: str
    filename: str
    content_type: str
    size: int

    @property
    def stored_name(self) -> str:
        """The file's name in the staging folder."""
        return f"{self.id}.{_EXTENSION[self.content_type]}"

    @property
    def is_image(self) -> bool:
        """A photo (shown as a thumbnail), not a PDF."""
        return self.content_type.startswith("image/")

    @property
    def size_label(self) -> str:
        """Its size for people."""
        return size_label(self.size)


class Staging:
    """The staged files of one intake form (``<root>/<intake key>/``)."""

    def __init__(self, root: Path, key: str) -> None:
        if not _KEY.match(key):
            raise KioskError("表单编号无效, 请刷新页面后重新填写")
        self.folder = root / key

    def _index(self) -> list[StagedFile]:
        try:
            raw = json.loads((self.folder / "index.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        files = [StagedFile(**entry) for entry in raw.get("files", [])]
        return [f for f in files if (self.folder / f.stored_name).is_file()]

    def _save_index(self, files: list[StagedFile]) -> None:
        tmp = self.folder / "index.json.tmp"
        tmp.write_text(json.dumps({"files": [asdict(f) for f in files]}), encoding="utf-8")
        tmp.replace(self.folder / "index.json")

    def files(self) -> list[StagedFile]:
        """Every staged file, in the order they were added."""
        with _lock:
            return self._index()

    def by_material(self) -> dict[str, list[StagedFile]]:
        """The staged files of each material."""
        grouped: dict[str, list[StagedFile]] = {}
        for f in self.files():
            grouped.setdefault(f.material, []).append(f)
        return grouped

    def add(self, material: str, filename: str, prepared: Prepared) -> StagedFile:
        """Stage a prepared file of ``material`` within the per-material and per-case limits."""
        if not _MATERIAL.match(material):
            raise AttachmentRefused("没有这项材料")
        name = Path(filename.replace("\\", "/")).name[:120] or f"{material}.{prepared.extension}"
        with _lock:
            files = self._index()
            if sum(1 for f in files if f.material == material) >= MAX_FILES_PER_MATERIAL:
                raise AttachmentRefused(
                    f"每项材料最多 {MAX_FILES_PER_MATERIAL} 个文件, “{name}”未加入"
                )
            total = sum(f.size for f in files) + len(prepared.data)
            if total > MAX_CASE_BYTES:
                raise AttachmentRefused(
                    f"本件附件合计不能超过 {size_label(MAX_CASE_BYTES)}, “{name}”未加入"
                )
            staged = StagedFile(
                secrets.token_hex(8), material, name, prepared.content_type, len(prepared.data)
            )
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / staged.stored_name).write_bytes(prepared.data)
            self._save_index([*files, staged])
            return staged

    def remove(self, ids: Iterable[str]) -> None:
        """Unstage the files with these ids (unknown ids are ignored)."""
        drop = {i for i in ids if _FILE_ID.match(i)}
        if not drop:
            return
        with _lock:
            files = self._index()
            for f in files:
                if f.id in drop:
                    (self.folder / f.stored_name).unlink(missing_ok=True)
            self._save_index([f for f in files if f.id not in drop])

    def read(self, file_id: str) -> tuple[StagedFile, bytes] | None:
        """A staged file and its bytes, or None."""
        found = next((f for f in self.files() if f.id == file_id), None)
        if found is None:
            return None
        return found, (self.folder / found.stored_name).read_bytes()

    def attachments(self) -> dict[str, dict[str, Any]]:
        """The staged files as a document's inline ``_attachments``, named
        ``material/<key>/<n>.<ext>`` (n counting from 1 within each material)."""
        out: dict[str, dict[str, Any]] = {}
        counts: dict[str, int] = {}
        for f in self.files():
            counts[f.material] = counts.get(f.material, 0) + 1
            name = f"material/{f.material}/{counts[f.material]}.{_EXTENSION[f.content_type]}"
            data = (self.folder / f.stored_name).read_bytes()
            out[name] = {
                "content_type": f.content_type,
                "data": base64.b64encode(data).decode("ascii"),
            }
        return out

    def clear(self) -> None:
        """Remove the staging folder (after the case is saved)."""
        with _lock:
            shutil.rmtree(self.folder, ignore_errors=True)


def staging(data_dir: Path, key: str) -> Staging:
    """The staging of intake form ``key`` in the kiosk's data folder; KioskError if ``key`` is
    not an intake key."""
    return Staging(data_dir / "uploads", key)


def prune(data_dir: Path, older_than: float = STALE_AFTER, now: float | None = None) -> int:
    """Remove staging folders untouched for ``older_than`` seconds; how many were removed."""
    root = data_dir / "uploads"
    if not root.is_dir():
        return 0
    limit = (now if now is not None else time.time()) - older_than
    removed = 0
    for folder in root.iterdir():
        try:
            if folder.is_dir() and _KEY.match(folder.name) and folder.stat().st_mtime < limit:
                with _lock:
                    shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        except OSError:
            continue
    return removed
