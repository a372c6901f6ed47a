"""Errors the user can fix: printed as one line, never as a traceback."""


class UserError(Exception):
    """Bad input (config, data, paths). The message says what is wrong and how to fix it."""
