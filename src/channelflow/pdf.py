"""Readable PDF documents built from plain text: a title, headings, paragraphs and tables.

Uses fpdf2's core Helvetica, which needs no font file (fpdf2 ships none) but covers only the
Windows-1252 characters: Western European letters, curly quotes and dashes. Anything else is
shown as its plain letter without accents, or as "?"; a PDF made here is for reading, and the
data file that goes with it keeps the exact text.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import Align, TableBordersLayout, XPos, YPos
from fpdf.fonts import FontFace

ENCODING = "windows-1252"
FONT = "Helvetica"
# Letters that do not decompose into a Windows-1252 letter plus accents.
_FALLBACK = {
    "\u0141": "L",  # L with stroke
    "\u0142": "l",
    "\u0110": "D",  # D with stroke
    "\u0111": "d",
    "\u0126": "H",  # H with stroke
    "\u0127": "h",
    "\u0131": "i",  # dotless i
    "\u2010": "-",  # hyphen
    "\u2011": "-",  # non-breaking hyphen
    "\u2012": "-",  # figure dash
    "\u2015": "-",  # horizontal bar
    "\u2212": "-",  # minus sign
    "\u2032": "'",  # prime
    "\u2033": '"',  # double prime
}
_HEADINGS = FontFace(emphasis="BOLD", fill_color=(230, 230, 230))


def safe_text(value: object) -> str:
    """``value`` as text the core fonts can show: unencodable characters approximated."""
    text = "" if value is None else str(value)
    return "".join(_safe_character(character) for character in text)


def _safe_character(character: str) -> str:
    if character == "\n":
        return character
    if not character.isprintable():
        return " "
    if _encodable(character):
        return character
    if character in _FALLBACK:
        return _FALLBACK[character]
    # Drop accents from the last until what is left can be shown: "ễ" becomes "ê", "ś" "s".
    parts = unicodedata.normalize("NFKD", character)
    base = "".join(part for part in parts if not unicodedata.combining(part))
    marks = [part for part in parts if unicodedata.combining(part)]
    for kept in range(len(marks), -1, -1):
        candidate = unicodedata.normalize("NFC", base + "".join(marks[:kept]))
        if candidate and _encodable(candidate):
            return candidate
    return "?"


def _encodable(text: str) -> bool:
    try:
        text.encode(ENCODING)
    except UnicodeEncodeError:
        return False
    return True


class _Pages(FPDF):
    def __init__(self, footer: str) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self._footer = footer

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FONT, size=8)
        self.set_text_color(90)
        self.cell(0, 5, self._footer, align=Align.L)
        self.set_x(self.l_margin)
        self.cell(0, 5, f"Page {self.page_no()} of {{nb}}", align=Align.R)
        self.set_text_color(0)


class Document:
    """An A4 document written top to bottom; every page numbered "Page n of N".

    ``footer`` is printed at the foot of every page too (say what the document is, so a
    loose page can be put back). ``created`` is the creation date recorded in the file.
    """

    def __init__(self, title: str, *, footer: str = "", created: datetime | None = None) -> None:
        pdf = _Pages(safe_text(footer))
        pdf.core_fonts_encoding = ENCODING
        pdf.set_title(safe_text(title))
        pdf.set_creator("channelflow")
        if created is not None:
            pdf.set_creation_date(created)
        pdf.set_margins(15, 15, 15)
        pdf.set_auto_page_break(True, margin=18)
        pdf.add_page()
        self._pdf = pdf
        self._write(title, size=16, style="B", height=8, after=3)

    def heading(self, text: str, *, level: int = 1) -> None:
        """A heading; level 1 starts a section, level 2 a part of one."""
        size = 13 if level <= 1 else 11
        self._pdf.ln(3 if level <= 1 else 1)
        self._write(text, size=size, style="B", height=6.5 if level <= 1 else 5.5, after=1)

    def paragraph(self, text: str) -> None:
        self._write(text, size=10, style="", height=5, after=2)

    def key_values(self, pairs: Iterable[tuple[str, object]]) -> None:
        """Label and value on each line; pairs whose value is None are left out."""
        rows = [(label, value) for label, value in pairs if value is not None]
        if not rows:
            return
        self._pdf.set_font(FONT, size=9)
        with self._pdf.table(
            col_widths=(1, 2.6),
            first_row_as_headings=False,
            borders_layout=TableBordersLayout.HORIZONTAL_LINES,
            text_align=(Align.L, Align.L),
            line_height=4.6,
            padding=(0.8, 1.5),
        ) as table:
            for label, value in rows:
                row = table.row()
                row.cell(safe_text(label), style=FontFace(emphasis="BOLD"))
                row.cell(safe_text(value))
        self._pdf.ln(2)

    def table(
        self,
        columns: Sequence[str],
        rows: Iterable[Sequence[object]],
        *,
        widths: Sequence[float] | None = None,
        empty: str = "None.",
    ) -> int:
        """A table with a heading row (repeated on each page) and wrapped cells.

        ``widths`` are relative column widths. A table with no rows prints ``empty``
        instead. Returns the number of rows.
        """
        body = [[safe_text(cell) for cell in row] for row in rows]
        if not body:
            self.paragraph(empty)
            return 0
        self._pdf.set_font(FONT, size=8)
        with self._pdf.table(
            col_widths=tuple(widths) if widths else None,
            headings_style=_HEADINGS,
            text_align=Align.L,
            line_height=4,
            padding=(0.8, 1.2),
            repeat_headings=1,
        ) as table:
            table.row([safe_text(column) for column in columns])
            for cells in body:
                table.row(cells)
        self._pdf.ln(2)
        return len(body)

    def output(self) -> bytes:
        return bytes(self._pdf.output())

    def save(self, path: Path) -> None:
        path.write_bytes(self.output())

    def _write(self, text: str, *, size: float, style: str, height: float, after: float) -> None:
        self._pdf.set_font(FONT, style=style, size=size)
        self._pdf.multi_cell(
            0, height, safe_text(text), align=Align.L, new_x=XPos.LMARGIN, new_y=YPos.NEXT
        )
        self._pdf.ln(after)
