"""vaeops: measure why a VAE samples z ~ q(z|x) instead of decoding the mean, in a validated, versioned pipeline.

One sub-package per pipeline stage, plus a small core:

- `vaeops.core`: typed params, user-facing errors, atomic file I/O (every stage imports it);
- `vaeops.data`: prepare and validate the data set;
- `vaeops.training`: the VAE, its objectives and the train stage;
- `vaeops.evaluation`: sampled vs mean decoding, the K-sample estimators, the report;
- `vaeops.serving`: ONNX export, the torch-free inference library, the HTTP service;
- `vaeops.lifecycle`: the promotion gate, recording runs with DVC, the flow's cache keys;

and `vaeops.cli`, the `vaeops` command.
"""

from vaeops.core import __version__

__all__ = ["__version__"]
