"""secretpatch: Flyte's GCP Secret Manager pod mutation as declarative rules and templates.

The public surface is what this module exports; everything else is internal.
"""

from .engine import Engine, Injected, Mutation
from .errors import InputError, LoadError, Rejected, RenderError, SecretpatchError
from .secrets import SecretRequest

__version__ = "0.1.0"

__all__ = [
    "Engine",
    "Injected",
    "InputError",
    "LoadError",
    "Mutation",
    "Rejected",
    "RenderError",
    "SecretRequest",
    "SecretpatchError",
    "__version__",
]
