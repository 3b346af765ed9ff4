"""The one exception type the CLI turns into a one-line message and exit code 2."""


class UserError(Exception):
    """Bad input from the user (name, value, file, missing data): print the message, no traceback."""
