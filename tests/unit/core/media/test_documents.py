"""Text extraction for augment/text-parser (core/media/documents.py): each format, and what is refused."""

from __future__ import annotations

import pytest

from tests.support.documents import docx_with, pdf_with, pptx_with, xlsx_with, zipped
from tollway.core.media import documents
from tollway.errors import TollwayError


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (pdf_with("Hello from a PDF"), "Hello from a PDF"),
        (docx_with("First &amp; line", "Second line"), "First & line\nSecond line"),
        (pptx_with(*[f"slide {n}" for n in range(1, 12)]), "\n\n".join(f"slide {n}" for n in range(1, 12))),
        (xlsx_with("Revenue", "42"), "Revenue\n42"),
        ("plain text, café".encode(), "plain text, café"),
        ("latin-1 caf\xe9".encode("latin-1"), "latin-1 caf\xe9"),
    ],
)
def test_each_format_gives_its_text(data: bytes, expected: str) -> None:
    assert documents.extract(data) == expected


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.4\nnot really a pdf",
        b"PK\x03\x04 truncated zip",
        zipped({"something/else.xml": "<x/>"}),  # a zip, but no Office document
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",  # binary
    ],
)
def test_what_cannot_be_read_is_a_400_naming_file(data: bytes) -> None:
    with pytest.raises(TollwayError) as caught:
        documents.extract(data)
    assert caught.value.status == 400 and caught.value.param == "file"


def test_a_zip_that_inflates_past_the_bound_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(documents, "MAX_INFLATED_BYTES", 1000)
    with pytest.raises(TollwayError) as caught:
        documents.extract(docx_with("x" * 2000))
    assert caught.value.param == "file" and "inflates" in caught.value.message
