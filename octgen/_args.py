"""argparse types shared by the ``octgen`` subcommands and the benchmarks' argument
parsers: each rejects a bad value in one line."""
from __future__ import annotations

import argparse

from ._limits import MAX_DEPTH


def int_in_range(lo: int, hi: int):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got '{text}'") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"must be in [{lo}, {hi}], got {v}")
        return v
    parse.__name__ = "integer"
    return parse


depth_arg = int_in_range(1, MAX_DEPTH)
