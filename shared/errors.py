"""One base class for expected failures, so the command line can tell them from bugs.

An ``AlsError`` is something a user can fix (a bad input file, a missing run, a server that is not
running): ``als-lm`` prints its message on one line and exits 1. Any other exception is a bug and
keeps its traceback. Subclasses also derive from the built-in type they replaced (``ValueError``,
``LookupError``, ...), so code and tests that catch that type still do.
"""

from __future__ import annotations


class AlsError(Exception):
    """An expected failure whose message says what is wrong and, where it can, how to fix it."""


class InvalidInput(AlsError, ValueError):
    """An input (file, argument, published artifact) that cannot be used; the message names it."""


class MissingArtifact(AlsError, KeyError):
    """A run lacks an output or an input that the reader needs."""

    def __str__(self) -> str:  # KeyError quotes its argument; this is a sentence
        return str(self.args[0]) if self.args else ""
