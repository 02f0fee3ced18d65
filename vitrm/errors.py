"""Which exceptions are the user's to fix (one clear line) rather than bugs (a traceback)."""

from .checkpoint import CheckpointError
from .data import DataError
from .images import InvalidImageError


def is_user_error(e: BaseException) -> bool:
    from .train import ConfigError
    return isinstance(e, (CheckpointError, DataError, InvalidImageError, ConfigError, ValueError,
                          FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError))
