"""Errors that are the user's to fix: the CLI prints them as one paragraph, without a traceback."""


class UserError(Exception):
    """Bad input or bad usage. The message names the file/field and says what to do."""


class DataError(UserError):
    """A dataset on disk does not look like what was asked for."""
