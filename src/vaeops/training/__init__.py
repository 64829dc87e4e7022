"""Train stage: fit each model variant (`vae`, `plugin`) on the prepared data.

Reads `data/prepared/` and `reports/validation.json`; writes `models/<variant>/{best,last}.pt` and `train.json`, and
dvclive metrics under `reports/train/<variant>/`. Modules: `model` (the VAE), `objective` (ELBO and IWAE bounds),
`trainer` (one epoch), `optim`, `devices` (CPU/CUDA/MPS settings), `ddp`, `binarize`, `progress`, `checkpoint`,
and `train` (the stage function).
"""
