"""Evaluate stage: sampled against mean decoding, the K-sample estimators and latent health, on held-out data.

Reads `data/prepared/` and `models/<variant>/best.pt`; writes `reports/metrics.json`, `reports/eval/*.csv`,
`reports/plots/*.png` and `reports/report.md`. Modules: `estimators` (streamed Monte-Carlo estimates),
`latent_health`, `evaluate` (the stage function), `plots` (figures), `report` (the Markdown report's wording), and
`dvc_plots` (`vaeops plots`: DVC's plots as a page that renders offline).
"""
