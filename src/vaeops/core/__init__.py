"""The core everything stands on: typed params (`params/`), user-facing errors (`errors`), atomic file I/O
(`fileio`), typed JSON artifacts read and written in one place (`artifacts`), progress with an ETA (`progress`).

It reads params.yaml and writes nothing of its own; the version below is stamped into checkpoints and exports.
"""

__version__ = "0.1.0"
