"""samstar's own error types: the failures the ``samstar`` command reports in one line.

Layer 0: imports nothing from samstar, so every layer can raise them. The command line
(:mod:`samstar_env.cli`) turns exactly these (:data:`CLI_ERRORS`) into exit status 2 and one line
naming the input; anything else is a bug and keeps its traceback.

Examples
--------
>>> err = InputError("unknown task 'nope'; expected one of perovskite, ito, auco or a path")
>>> isinstance(err, ValueError)  # code that catches ValueError keeps working
True
>>> isinstance(TaskFileError("tasks.toml: no key 'name'"), InputError)
True
>>> isinstance(MissingFileError("scan.tif: no such file"), FileNotFoundError)
True
>>> RewardError("size_window", "returned nan").name
'size_window'
"""

from __future__ import annotations

from typing import Any


class InputError(ValueError):
    """Bad user input: an unknown name, a missing or unreadable file, an option out of range.

    The message names the input and what was expected. A ``ValueError``, so callers that caught
    ``ValueError`` from the same functions still do.
    """


class MissingFileError(InputError, FileNotFoundError):
    """A file or folder the user named does not exist (also a ``FileNotFoundError``)."""


class MissingExtraError(ImportError):
    """An optional extra is needed and not installed; the message says which ``pip install``."""


class TaskFileError(InputError):
    """A task file is missing, unreadable or has a wrong key; the message names the file and key."""


class RewardError(RuntimeError):
    """A reward raised, or returned something that is not a finite float in [0, 1].

    Parameters
    ----------
    name : str
        The reward's name in its suite.
    message : str
        What it did.
    """

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"reward {name!r}: {message}")
        self.name = name

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the error picklable (executors send errors between processes).
        return (_rebuild_reward_error, (self.name, str(self)))


def _rebuild_reward_error(name: str, text: str) -> RewardError:
    err = RewardError.__new__(RewardError)
    RuntimeError.__init__(err, text)
    err.name = name
    return err


class ResumeMismatchError(RuntimeError):
    """A resumed agent asked for something other than what its journal recorded."""


CLI_ERRORS: tuple[type[Exception], ...] = (InputError, MissingExtraError, RewardError, ResumeMismatchError)
"""What ``samstar`` reports as one line with exit status 2 (:class:`TaskFileError` and
:class:`MissingFileError` are InputErrors)."""


class MaskBudgetExceeded(RuntimeError):
    """More masks passed AMG's filters and NMS than the caller's ``max_masks`` allows.

    Raised by ``MaskEngine.generate(..., max_masks=)`` before the per-mask work (small-region
    post-processing, assembly), so a degenerate configuration costs no more than its replay.

    Parameters
    ----------
    count : int
        Masks that passed the thresholds and NMS (before small-region post-processing).
    limit : int
        The ``max_masks`` given.
    """

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(f"{count} masks passed the thresholds and NMS; max_masks is {limit}")
        self.count = int(count)
        self.limit = int(limit)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.count, self.limit))

