"""Whether a value is a valid DICOM UID, and why not, in words (PS3.5 section 9.1).

A UID is at most 64 characters of digits and dots: components separated by single dots, none empty,
none with a leading zero (``0`` alone is a component). The catalog never keys a series by anything
else, and derived outputs never reference anything else (the reader puts surrogates in their place).

Example:
    >>> uid_problem("1.2.840.10008.5.1.4.1.1.2")
    ''
    >>> uid_problem("1.2.03")
    'a component with a leading zero'
    >>> is_valid_uid("1.2/etc/passwd")
    False
"""

from __future__ import annotations

MAX_LENGTH = 64
_DIGITS_AND_DOTS = frozenset("0123456789.")
SHOWN = 70  # characters of a bad value quoted in a message


def uid_problem(value: str) -> str:
    """Why ``value`` is not a valid UID ('' when it is one); an empty value is 'empty'."""
    if not value:
        return "empty"
    problems = []
    if len(value) > MAX_LENGTH:
        problems.append(f"{len(value)} characters, more than {MAX_LENGTH}")
    if not set(value) <= _DIGITS_AND_DOTS:
        problems.append("characters other than digits and dots")
    components = value.split(".")
    if "" in components:
        problems.append("an empty component")
    if any(len(c) > 1 and c.startswith("0") for c in components):
        problems.append("a component with a leading zero")
    return "; ".join(problems)


def is_valid_uid(value: str | None) -> bool:
    """Whether ``value`` is a valid UID (None and '' are not)."""
    return bool(value) and not uid_problem(str(value))


def shown_uid(value: str) -> str:
    """A bad value quoted for a message, cut to ``SHOWN`` characters."""
    return repr(value if len(value) <= SHOWN else value[:SHOWN] + "...")


def invalid_uid_note(keyword: str, value: str) -> str:
    """A warning naming an invalid UID and why it is invalid ('' when the value is valid or empty)."""
    if not value or is_valid_uid(value):
        return ""
    return f"{keyword} {shown_uid(value)} is not a valid UID ({uid_problem(value)})"
