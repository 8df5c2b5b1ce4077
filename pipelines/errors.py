"""User-facing errors.

Every mistake a user can make (a wrong path, a bad config value, a concept the world does not
know) is raised as an :class:`EraseError` whose message names the problem *and* the fix. The
CLI prints the message on one line and exits with code 2; nothing else a user does should end
in a traceback.
"""


class EraseError(Exception):
    """A problem the user can fix; the message says how."""


class ModelLoadError(EraseError):
    """A base model could not be found or read."""


class BaseMismatchError(EraseError):
    """An erasure artifact was applied to a base model it was not made from."""


class ConfigError(EraseError):
    """A method or command configuration is invalid."""


class TrainingDiverged(EraseError):
    """Training went wrong (a loss or gradient became NaN/inf, or a method's guard tripped); the run stops.

    The last good state travels with the error: ``last_good`` holds the trained tensors after
    ``last_good_step`` completed steps, from before the bad update. The training loop fills them
    in (the tensors as they were when the step failed); a method that saw the trouble start
    earlier (DoCo's collapse rule) passes its own copy. ``result`` is the partial
    ``ErasureResult`` of those tensors once ``ErasureMethod.fit`` has built it; ``erase run``
    writes it beside ``--out``. A Python caller can keep or inspect it from the exception.
    """

    def __init__(self, message: str, *, last_good_step: int | None = None, last_good: dict | None = None) -> None:
        super().__init__(message)
        self.last_good_step = last_good_step
        self.last_good = last_good
        self.result = None
