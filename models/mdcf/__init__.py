"""MDCF (seeds/001, Microscope): FDE + LMAE two-stage dynamics compression + latent video diffusion."""
from edgeth.models.mdcf import family  # noqa: F401 (registers the family and its driver)
