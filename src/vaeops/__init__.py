"""vaeops: measure why a VAE samples z ~ q(z|x) instead of decoding the mean, in a validated, versioned pipeline."""

__version__ = "0.1.0"
