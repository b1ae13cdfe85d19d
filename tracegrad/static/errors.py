"""TF1's run-time error classes (`tf.errors.*`): what `Session.run` raises when a
fetch cannot be computed from its feeds and the session's variables."""


class OpError(Exception):
    """An error raised while running a graph, naming the op that caused it."""

    def __init__(self, message, op=None):
        super().__init__(message)
        self.message = message
        self.op = op


class InvalidArgumentError(OpError, ValueError):
    """A placeholder a fetch needs was not fed, or a fed value does not fit."""


class FailedPreconditionError(OpError):
    """A variable was read before it was initialized in this session."""
