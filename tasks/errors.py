"""Errors the user can fix: printed as one line each, never as a traceback."""

from __future__ import annotations


class UserError(Exception):
    """Bad input (config, data, paths). The message says what is wrong and how to fix it; a
    message of several lines lists several problems, one per line."""


def report(err: BaseException) -> str:
    """The lines to print for an error: ``error: ...`` per problem."""
    return "\n".join(f"error: {line}" for line in str(err).splitlines() if line.strip())
