"""Small documents for the text-parser tests: a one-page PDF with a line of text, and the zip-based
Office formats with a few paragraphs, built in memory (no fixture files)."""

from __future__ import annotations

import io
import zipfile


def pdf_with(text: str) -> bytes:
    stream = f"BT /F1 18 Tf 40 100 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def zipped(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def docx_with(*paragraphs: str) -> bytes:
    body = "".join(f"<w:p><w:r><w:t>{p}</w:t></w:r></w:p>" for p in paragraphs)
    return zipped({"word/document.xml": f'<w:document xmlns:w="w"><w:body>{body}</w:body></w:document>'})


def pptx_with(*slides: str) -> bytes:
    members = {"ppt/presentation.xml": "<p:presentation/>"}
    for number, text in enumerate(slides, 1):
        members[f"ppt/slides/slide{number}.xml"] = f"<p:sld><a:p><a:r><a:t>{text}</a:t></a:r></a:p></p:sld>"
    return zipped(members)


def xlsx_with(*cells: str) -> bytes:
    strings = "".join(f"<si><t>{c}</t></si>" for c in cells)
    return zipped({"xl/workbook.xml": "<workbook/>", "xl/sharedStrings.xml": f"<sst>{strings}</sst>"})
