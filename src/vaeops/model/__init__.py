"""The model library every torch stage stands on: the VAE and the maths it owns, and how it is stored.

Modules: `vae` (encoder, decoder, likelihoods, the fast Bernoulli log-likelihood and the bf16 decoder head),
`objectives` (reparameterised draws, importance log-weights, the ELBO and IWAE bounds), `estimators` (the one
implementation of each Monte-Carlo estimate: reconstructions, Jensen gap, ELBO_K, L_K, NLL), `binarize`,
`checkpoint` (the checkpoint format, written atomically, read weights-only) and `devices` (device choice, threads,
seeding). It reads and writes no pipeline folder of its own; the stages decide where checkpoints live.
"""
