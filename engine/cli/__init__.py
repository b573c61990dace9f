"""The command line: argument parsing (main.py), the cluster commands (deploy.py) and the
operator's golden-file workflow (operator.py), over one module that reads documents and pods."""

from .main import main

__all__ = ["main"]
