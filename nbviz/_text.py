"""Words in messages: counts with the right noun form."""

from __future__ import annotations


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """``"1 channel"``, ``"3 channels"``, ``"1,200 samples"``.

    >>> plural(1, "image"), plural(0, "image"), plural(2, "class", "classes")
    ('1 image', '0 images', '2 classes')
    """
    return f"{n:,} {noun if n == 1 else nouns or noun + 's'}"
