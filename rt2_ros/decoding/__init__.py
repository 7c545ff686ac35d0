"""Constrained decoding: action and regex grammars enforced inside `model.generate` (guided)."""


class ConstraintError(ValueError):
    """A decoding constraint cannot be built or satisfied (unsupported regex, budget too small)."""
