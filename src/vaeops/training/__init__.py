"""Train stage: fit each model variant (`vae`, `plugin`, `autoencoder`) on the prepared data, one run per seed.

Reads `data/prepared/` and `reports/validation.json`; writes `models/<variant>/{best,last}.pt` (the best seed's),
`models/<variant>/replicates/seed-<seed>/`, and dvclive metrics under `reports/train/<variant>/`. Stands on the model
library (`vaeops.model`: the VAE, objectives, checkpoints, devices). Modules: `trainer` (one epoch), `optim`, `ddp`
(several GPUs under torchrun), `progress` (bars and dvclive), and `train` (the stage function).
"""
