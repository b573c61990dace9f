"""secretpatch: Flyte's GCP Secret Manager pod mutation as declarative rules and templates.

The public surface is what this module exports; everything else is internal.
"""

from .core.errors import InputError, LoadError, LocatedError, Rejected, RenderError, SecretpatchError
from .core.mutation import Injected, Mutation
from .core.requests import SecretRequest
from .core.runtime import Engine

__version__ = "0.1.0"

__all__ = [
    "Engine",
    "Injected",
    "InputError",
    "LoadError",
    "LocatedError",
    "Mutation",
    "Rejected",
    "RenderError",
    "SecretRequest",
    "SecretpatchError",
    "__version__",
]
