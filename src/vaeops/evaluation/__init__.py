"""Evaluate stage: sampled against mean decoding, the K-sample estimators and latent health, on held-out data.

Reads `data/prepared/` and `models/<variant>/best.pt` (and each training seed's); writes `reports/metrics.json`,
`reports/headline.json`, `reports/eval/*.csv`, `reports/plots/*.png` and `reports/report.md`. The estimators
themselves live in the model library (`vaeops.model.estimators`). Modules: `measure` (what is measured on one model
and across seeds), `latent_health`, `claims` (how a comparison is worded), `evaluate` (the stage function), `plots`
(figures), `report` (the Markdown report), and `dvc_plots` (`vaeops plots`: DVC's plots as an offline page).
"""
