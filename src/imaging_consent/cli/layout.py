"""Tables that never cut a key: side by side when they fit the terminal, else one block a row.

Keys, addresses and hashes are shown whole so they can be copied. Rich would squeeze a table
that is wider than the terminal and cut long values with ``…``; :func:`print_records` prints
such a table as one block per row instead (``label: value`` lines, a long value on its own
indented line), which reads at 80 columns.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["print_records"]

_INDENT = "  "
_UNBOUNDED = 100_000


def _blocks(
    console: Console, title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]
) -> None:
    console.print(f"[bold]{title}[/]")
    for row in rows:
        console.print(f"[bold]{row[0]}[/]")
        for header, value in zip(headers[1:], row[1:], strict=True):
            line = f"{_INDENT}{header}: {value}"
            if Text.from_markup(line).cell_len <= console.width:
                console.print(line)
            else:
                console.print(f"{_INDENT}{header}:\n{_INDENT * 2}{value}")


def print_records(
    console: Console,
    title: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    right: Sequence[str] = (),
) -> None:
    """Print ``rows`` under ``headers`` as a table if it fits ``console``, else as blocks.

    The first column names each block in the narrow layout. Values may hold rich markup.

    Args:
        console: Where to print (its width decides the layout).
        title: The table's title.
        headers: Column headers.
        rows: One sequence of cells per row, as many as ``headers``.
        right: Headers of the columns to right-align in the table layout.
    """
    table = Table(title=title)
    for header in headers:
        table.add_column(header, no_wrap=True, justify="right" if header in right else "left")
    for row in rows:
        table.add_row(*row)
    unbounded = console.options.update_width(_UNBOUNDED)  # a measure is capped at the width
    if console.measure(table, options=unbounded).maximum <= console.width:
        console.print(table)
    else:
        _blocks(console, title, headers, rows)
