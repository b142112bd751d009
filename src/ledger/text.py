"""Text from outside (data, file names, arguments) as a terminal or a log may show it."""

from __future__ import annotations

import re

_UNSHOWABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
"""Control characters but newline and tab (ESC moves the cursor, clears the screen, retitles
the window), line and paragraph separators, bidirectional overrides (which reorder what is
shown), and lone surrogates (which UTF-8 cannot carry)."""


def printable(text: str) -> str:
    """`text` with every character a terminal would obey rather than show written as its
    escape (``\\x1b``, ``\\u202e``, ``\\udcff``); everything else, markup-like text included,
    as it is."""
    return _UNSHOWABLE.sub(lambda match: repr(match.group())[1:-1], text)
