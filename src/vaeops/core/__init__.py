"""The core every stage imports: typed params (`params/`), user-facing errors (`errors`), atomic file I/O (`fileio`).

It reads params.yaml and writes nothing of its own; the version below is stamped into checkpoints and exports.
"""

__version__ = "0.1.0"
