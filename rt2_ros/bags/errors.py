"""Errors of the bag tools: each is a user-facing problem with a stable kind and one-line text."""


class BagError(Exception):
    """
    A problem with a bag or with what the user asked of it.

    kind is a short stable name (missing, not_a_bag, corrupt, truncated, storage_mismatch,
    unknown_type, missing_topic, bad_message, exists, usage) for tests and scripts; the message is
    one line that says what is wrong and, where there is one, what to do about it.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
