"""
argparse types shared by the subcommands: a bad number is a usage error with a reason.

argparse turns the ArgumentTypeError raised here into `rt2 <cmd>: error: argument --x: <reason>`
and exit status 2, the CLI's convention for bad input.
"""
import argparse


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not an integer') from None


def positive_int(text: str) -> int:
    """Parse an integer of at least 1 (counts: episodes, steps, workers, threads)."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError('must be at least 1')
    return value


def seed_value(text: str) -> int:
    """Parse a seed for the sim and training: 0 .. 2^31-1 (what numpy and episode salts take)."""
    value = _integer(text)
    if not 0 <= value < 2**31:
        raise argparse.ArgumentTypeError('seeds are 0 .. 2^31-1')
    return value
