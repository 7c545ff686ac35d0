"""
Typed errors for action spaces and codecs.

A model is an untrusted text generator: anything it writes that is not exactly a valid action must
surface as ActionDecodeError (never be clamped into something valid), so the controller can halt
and count the cause.
"""


class ActionSpaceError(ValueError):
    """An action-space definition (YAML or preset name) is unusable."""


class ActionEncodeError(ValueError):
    """Values cannot be written as tokens of an action space (wrong count, NaN, bad discrete)."""


class ActionDecodeError(ValueError):
    """
    Model output is not a valid action of the space.

    `kind` names the failure for counting and tests: 'empty', 'format', 'count', 'not_integer',
    'out_of_range', 'outside_block', 'too_long'.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class StatisticsError(ValueError):
    """A dataset_statistics.json file or unnorm key is unusable."""
