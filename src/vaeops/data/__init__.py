"""Data stages: `prepare`, `validate` and `drift`.

prepare reads the configured data set (the bundled digits, or IDX files from `data.source_dir`) and writes
`data/prepared/` in the format of `vaeops.dataset`; validate reads it and writes `reports/validation.json` (Great
Expectations); drift compares the new training split with the champion's data profile and writes
`reports/drift.json`. Modules: `idx` (IDX reader), `sources` (data sets), `prepare`, `stats` (per-image statistics
and default bounds), `validate` (the gate), `drift`.
"""
