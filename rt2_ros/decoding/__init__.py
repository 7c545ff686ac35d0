"""Constrained decoding: regex automata, vocabulary tries, token masks (torch only in logits)."""
