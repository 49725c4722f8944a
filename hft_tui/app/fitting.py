"""Making a line or a table fit a width without wrapping it or cutting a word.

Textual has no media queries; the screen toggles size classes (``sizes``)
and these helpers do the rest where CSS cannot: a one-line bar made of
parts, each with shorter forms, gives up its least important detail first
(``fit_line``); a table drops its least important columns first
(``fit_table``).  Nothing here wraps: a row that still does not fit is
cut, never folded onto a second line.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len
from rich.text import Text

# -- terminal sizes ------------------------------------------------------------------------

MIN_WIDTH, MIN_HEIGHT = 80, 24  # the smallest terminal every tab is laid out for
NARROW_BELOW = 120  # below: panes stack, tables drop columns
WIDE_FROM = 160  # from here: everything side by side, full tables
SHORT_BELOW = 32  # below: one-line top bar, no pane titles, no chart
TALL_FROM = 48  # from here: the sparklines also under a stacked book


def size_classes(width: int, height: int) -> set[str]:
    """The screen's classes for a terminal of ``width`` x ``height`` (app.tcss uses them)."""
    classes = set()
    if width < MIN_WIDTH or height < MIN_HEIGHT:
        classes.add("-too-small")
    if width < NARROW_BELOW:
        classes.add("-narrow")
    elif width >= WIDE_FROM:
        classes.add("-wide")
    if height < SHORT_BELOW:
        classes.add("-short")
    elif height >= TALL_FROM:
        classes.add("-tall")
    return classes


SIZE_CLASSES = ("-too-small", "-narrow", "-wide", "-short", "-tall")


# -- one line ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """A piece of a one-line bar: its forms, longest first ("" may be the last: the
    part can go), and its rank: the part with the highest rank gives way first."""

    forms: tuple[Text, ...]
    rank: int = 0

    @classmethod
    def of(cls, *forms: str | Text, style: str = "", rank: int = 0) -> Part:
        return cls(tuple(f if isinstance(f, Text) else Text(f, style=style) for f in forms), rank)


def fit_line(parts: list[Part], width: int) -> Text:
    """``parts`` joined on one line of at most ``width`` cells: while it is too wide,
    the part of highest rank that still can takes its next shorter form (parts of
    equal rank: the last one first).  If every part is at its shortest and the
    line is still too wide, its end is cut at a word, with an ellipsis."""
    chosen = [0] * len(parts)

    def line() -> Text:
        out = Text()
        for part, i in zip(parts, chosen, strict=True):
            out.append_text(part.forms[i])
        return out

    text = line()
    while text.cell_len > width:
        shorter = [k for k, p in enumerate(parts) if chosen[k] + 1 < len(p.forms)]
        if not shorter:
            return shorten(text, width)
        k = max(shorter, key=lambda k: (parts[k].rank, k))
        chosen[k] += 1
        text = line()
    return text


def shorten(text: Text, width: int) -> Text:
    """``text`` cut to ``width`` cells at the end of a word, with an ellipsis."""
    if text.cell_len <= width:
        return text
    if width <= 1:
        return Text("…"[:width])
    plain = text.plain
    cut = width - 1
    while cut > 0 and cell_len(plain[:cut]) > width - 1:
        cut -= 1
    space = plain.rfind(" ", 0, cut + 1)
    if space > 0:
        cut = space
    out = text[:cut]
    out.rstrip()
    out.append("…")
    return out


# -- tables --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """A column of a text table: its header, alignment, and when it goes: columns of
    the highest ``drop`` rank go first (together); 0 never goes."""

    header: str
    right: bool = True
    drop: int = 0


Cell = tuple[str, str]  # (text, style)
GAP = 2  # spaces between two columns


def table_width(columns: list[Column], rows: list[list[Cell]]) -> int:
    widths = [max([cell_len(c.header)] + [cell_len(r[i][0]) for r in rows]) for i, c in enumerate(columns)]
    return sum(widths) + GAP * (len(widths) - 1)


def fit_table(columns: list[Column], rows: list[list[Cell]], width: int | None) -> tuple[Text, list[str]]:
    """The table as one Text, each row one line, in at most ``width`` cells (None:
    every column): the columns of the highest drop rank go first until it fits.
    Returns (the text, the headers of the columns left out)."""
    keep = list(range(len(columns)))
    while width is not None and table_width([columns[i] for i in keep], [[r[i] for i in keep] for r in rows]) > width:
        rank = max(columns[i].drop for i in keep)
        if rank == 0:
            break  # only the columns that never go are left: cut, never wrap
        keep = [i for i in keep if columns[i].drop != rank]
    hidden = [columns[i].header for i in range(len(columns)) if i not in keep]
    cols = [columns[i] for i in keep]
    widths = [max([cell_len(c.header)] + [cell_len(r[i][0]) for r in rows]) for c, i in zip(cols, keep, strict=True)]
    last = len(cols) - 1
    out = Text(no_wrap=True, overflow="crop", end="")
    for n, (c, w) in enumerate(zip(cols, widths, strict=True)):
        out.append(c.header if n == last and not c.right else _align(c.header, w, c.right), style="bold")
        if n < last:
            out.append(" " * GAP)
    for row in rows:
        out.append("\n")
        for n, (c, w, i) in enumerate(zip(cols, widths, keep, strict=True)):
            text, style = row[i]
            out.append(text if n == last and not c.right else _align(text, w, c.right), style=style)
            if n < last:
                out.append(" " * GAP)
    return out, hidden


def _align(text: str, width: int, right: bool) -> str:
    pad = " " * max(0, width - cell_len(text))
    return pad + text if right else text + pad
