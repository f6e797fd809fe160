"""IF-MDM: Implicit Face Motion Diffusion Model (seeds/004). Importing registers the family "ifmdm".

config.py presets, stage1.py encoder + renderer, stage2.py audio encoder + motion DiT,
programs.py deployable pieces, run.py RUN/ directories, training.py, family.py.
"""
from edgeth.models.ifmdm.family import IFMDMFamily

__all__ = ["IFMDMFamily"]
