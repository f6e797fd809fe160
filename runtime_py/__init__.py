"""Python reference runtime (installed as edgeth.runtime_py): runs a bundle's whole pipeline
on a chosen backend and checks outputs against PyTorch. Never falls back silently."""
