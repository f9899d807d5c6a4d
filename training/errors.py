"""Error types shared across dstudy.

:class:`UserError` marks a problem with the user's input (a bad preset name, a missing file, a foreign store). The
command line prints its message as one line and exits with status 2, without a traceback. Library code raises it
(or :class:`ValueError`, which the command line treats the same way) and never calls ``sys.exit`` itself.
"""


class UserError(Exception):
    """Bad input from the user: reported as one line, exit status 2."""


class DataMissingError(UserError, FileNotFoundError):
    """A dataset has neither a generator nor its files; the message names the paths that were looked for."""
