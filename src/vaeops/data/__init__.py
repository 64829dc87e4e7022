"""Data stages: `prepare` and `validate`.

prepare reads the configured data set (the bundled digits, or IDX files from `data.source_dir`) and writes
`data/prepared/{train,val,test}.npz` and `manifest.json`; validate reads those and writes `reports/validation.json`
(Great Expectations). Modules: `idx` (IDX reader), `sources` (data sets), `splits` (the prepared on-disk format every
later stage reads), `prepare`, `stats` (per-image statistics and default bounds), `validate` (the gate).
"""
