"""Learning from Encore's logs: join, train, evaluate offline, write snapshots (docs/learning.md).

DataFrames (pandas; `pip install encore-learn[frames]`):

    from encore.learn.frames import read_logs, train, evaluate, write_parquet, read_parquet

(`encore.learn.read_logs` and `encore.learn.evaluate` are the same functions; `train` lives in
`encore.learn.frames` only, since `encore.learn.train` is the trainer's module.)"""

from .. import __version__

__all__ = ["__version__", "read_logs", "evaluate", "write_parquet", "read_parquet"]


def __getattr__(name: str):
    # Lazy, so importing the package needs neither pandas nor pyarrow.
    if name in ("read_logs", "evaluate", "write_parquet", "read_parquet"):
        from . import frames

        return getattr(frames, name)
    raise AttributeError(f"module 'encore.learn' has no attribute {name!r}")
