"""vaeops: measure why a VAE samples z ~ q(z|x) instead of decoding the mean, in a validated, versioned pipeline.

One package per pipeline stage, standing on libraries (no stage imports another):

- `vaeops.core`: typed params, user-facing errors, atomic file I/O, typed JSON artifacts (everything stands on it);
- libraries the stages stand on: `vaeops.model` (the VAE and its maths, checkpoints), `vaeops.bundle` (the exported
  folder's contract), `vaeops.dataset` (the prepared data format);
- `vaeops.data`: prepare, validate and check drift of the data set;
- `vaeops.training`: the train stage (every model variant, every seed);
- `vaeops.evaluation`: sampled vs mean decoding, the K-sample study, latent health, the report;
- `vaeops.export`: the ONNX export;
- `vaeops.serving`: the torch-free inference library, the HTTP service;
- `vaeops.lifecycle`: the promotion gate, recording runs with DVC, the flow's cache keys;

and `vaeops.cli`, the `vaeops` command.
"""

from vaeops.core import __version__

__all__ = ["__version__"]
