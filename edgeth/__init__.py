"""edgeth: edge-deployment compiler and mobile runtime toolchain for talking-head models.

Importing this package is cheap on purpose: torch, executorch, coremltools, nncf and
tensorrt are imported inside the functions that need them.
"""
from edgeth.errors import EdgethError

__version__ = "0.1.0"
__all__ = ["EdgethError", "__version__"]
