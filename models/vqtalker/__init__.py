"""VQTalker (seeds/002): facial motion tokens (GRFSQ) + coarse-to-fine token generator.

config.py (presets), tokenizer.py (encoder + GRFSQ + warping renderer), speech.py (speech
tokens), generator.py (coarse-to-fine transformer), training.py, run.py (RUN/ folder),
programs.py (deployable pieces), driver.py (host pipeline "vqtalker"), codec.py (token file
format, README.md), family.py (the registration).
"""
from edgeth.models.vqtalker import family  # noqa: F401 (registers "vqtalker")
