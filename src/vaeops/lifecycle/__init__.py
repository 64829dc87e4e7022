"""The model's life after training: the promotion gate, the champion history, recording runs with DVC.

promote reads the export bundle (`models/onnx/`), `reports/validation.json` and `reports/metrics.json`, re-scores
champion and challenger on the same images (`rescore`), replaces `champion/` when the challenger passes, and writes
`reports/promotion.json`; `champions` keeps every champion in `champion-history/` for
`vaeops champion list|rollback|pin|unpin`; `record` runs `dvc commit` and `dvc push`; `pipeline` asks DVC which
dvc.yaml stage is stale and records each stage the Prefect flow ran in dvc.lock.
"""
