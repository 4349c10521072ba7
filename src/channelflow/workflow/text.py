"""Checking free text before it reaches the database or the audit trail."""

from __future__ import annotations

import re

from channelflow.exceptions import InvalidInput

MAX_TEXT = 2000
# C0 and C1 control characters except tab, newline and carriage return.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(value: str, *, what: str, max_length: int = MAX_TEXT) -> str:
    """``value`` stripped, or a refusal that names the field but never repeats the text.

    Refuses what the stores cannot hold the same way on every backend: NUL and other control
    characters, and lone surrogates (what Python makes of bytes that are not UTF-8).
    """
    value = value.strip()
    if not value:
        raise InvalidInput(f"{what} is empty")
    if len(value) > max_length:
        raise InvalidInput(f"{what} is longer than {max_length} characters")
    if _SURROGATE.search(value):
        raise InvalidInput(f"{what} is not valid text (it holds bytes that are not UTF-8)")
    if _CONTROL.search(value):
        raise InvalidInput(f"{what} holds a control character")
    return value
