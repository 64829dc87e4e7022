"""The model's life after training: the promotion gate, the champion history, recording runs, the flow's cache keys.

promote reads `models/onnx/`, `reports/validation.json` and `reports/metrics.json`, replaces `champion/` when the
challenger passes, and writes `reports/promotion.json`; `champions` keeps every champion in `champion-history/` for
`vaeops champion list|rollback|pin|unpin`; `record` runs `dvc commit` and `dvc push`; `fingerprint` hashes what each
dvc.yaml stage reads, for the Prefect flow's task cache.
"""
