"""svdops: check, provision and benchmark GPU hosts for Stable Video Diffusion."""

__version__ = "0.1.0"
