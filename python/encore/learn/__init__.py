"""Learning from Encore's logs: join, train, evaluate offline, write snapshots (docs/learning.md)."""

from .. import __version__

__all__ = ["__version__"]
