"""Text out of a document (Venice's augment/text-parser): PDF (pypdf), DOCX, PPTX and XLSX (their zip
members' XML text, read with the standard library: no XML parser sees the document, so no entity
expansion), and plain text (UTF-8, else Latin-1). Bounded: the upload's size (the route's), the bytes
a zip may inflate to, the pages of a PDF and the characters returned. An unreadable document is a 400
naming `file`. Nothing of the document is stored or logged."""

from __future__ import annotations

import html
import io
import re
import zipfile

from tollway.errors import ErrorCode, TollwayError

MAX_UPLOAD_BYTES = 25 * 1024 * 1024  # Venice's documented maximum
MAX_INFLATED_BYTES = 100 * 1024 * 1024  # what a zip's members may inflate to, all together
MAX_PDF_PAGES = 2000
MAX_TEXT_CHARS = 5_000_000
_ZIP_TEXT = {  # member name pattern → the XML element holding text
    "docx": (re.compile(r"^word/(document|footnotes|endnotes|header\d*|footer\d*)\.xml$"), "w:t"),
    "pptx": (re.compile(r"^ppt/slides/slide\d+\.xml$"), "a:t"),
    "xlsx": (re.compile(r"^xl/(sharedStrings\.xml|worksheets/sheet\d+\.xml)$"), "t"),
}
_PARAGRAPH = re.compile(r"</(w:p|a:p|si|row)>")


def _unreadable(kind: str) -> TollwayError:
    return TollwayError(
        ErrorCode.VALIDATION,
        f"The file could not be read as {kind}. Send a PDF, DOCX, PPTX, XLSX or plain text file.",
        param="file",
    )


def kind_of(data: bytes, filename: str) -> str:
    """pdf, docx, pptx, xlsx or txt, by the content (the name only tells the zip formats apart)."""
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        try:
            names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
        except zipfile.BadZipFile:
            raise _unreadable("a zip-based document") from None
        for kind, member in (
            ("docx", "word/document.xml"),
            ("pptx", "ppt/presentation.xml"),
            ("xlsx", "xl/workbook.xml"),
        ):
            if member in names:
                return kind
        raise _unreadable("a DOCX, PPTX or XLSX document")
    if b"\x00" in data[:8192]:
        raise _unreadable("text")
    return "txt"


def extract(data: bytes, filename: str = "") -> str:
    kind = kind_of(data, filename)
    if kind == "pdf":
        text = _pdf(data)
    elif kind == "txt":
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    else:
        text = _zipped(data, kind)
    return text[:MAX_TEXT_CHARS].strip()


def _pdf(data: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise TollwayError(ErrorCode.VALIDATION, "The PDF is encrypted: send it unlocked.", param="file")
        pages = reader.pages
        if len(pages) > MAX_PDF_PAGES:
            raise TollwayError(
                ErrorCode.VALIDATION, f"The PDF has more than {MAX_PDF_PAGES} pages.", param="file"
            )
        parts: list[str] = []
        size = 0
        for page in pages:
            parts.append(page.extract_text() or "")
            size += len(parts[-1])
            if size > MAX_TEXT_CHARS:
                break
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError):
        raise _unreadable("a PDF") from None
    return "\n\n".join(part.strip() for part in parts if part.strip())


def _zipped(data: bytes, kind: str) -> str:
    pattern, element = _ZIP_TEXT[kind]
    text_of = re.compile(rf"<{re.escape(element)}(?:\s[^>]*)?>([^<]*)</{re.escape(element)}>")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = sorted((i for i in archive.infolist() if pattern.match(i.filename)), key=_member_order)
        if sum(i.file_size for i in members) > MAX_INFLATED_BYTES:
            raise TollwayError(ErrorCode.VALIDATION, "The document inflates to too much text.", param="file")
        parts: list[str] = []
        for info in members:
            with archive.open(info) as member:
                xml = member.read(MAX_INFLATED_BYTES + 1).decode("utf-8", errors="replace")
            paragraphs = _PARAGRAPH.split(xml)
            lines = ["".join(html.unescape(t) for t in text_of.findall(p)) for p in paragraphs]
            parts.append("\n".join(line for line in lines if line.strip()))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, RuntimeError, EOFError, OSError):
        raise _unreadable(kind.upper()) from None
    return "\n\n".join(part for part in parts if part)


def _member_order(info: zipfile.ZipInfo) -> tuple[str, int]:
    """slide2 before slide10."""
    digits = re.findall(r"\d+", info.filename)
    return re.sub(r"\d+", "", info.filename), int(digits[-1]) if digits else 0
