"""The errors a user causes and can fix: the command line prints their message as one line.

Every other exception is a bug (or a broken machine) and keeps its full traceback. Each module
raises a subclass of ``UserError`` that says where the problem is: ``CheckpointError``,
``DataError``, ``InvalidImageError``, ``ConfigError``; ``UsageError`` is a command-line flag
out of range.
"""


class UserError(Exception):
    """Something the user can fix; the message names the file, key or flag and what is wrong."""


class UsageError(UserError, ValueError):
    """A command-line flag or argument that cannot be used; the message names the flag."""


def is_user_error(e: BaseException) -> bool:
    return isinstance(e, UserError)
