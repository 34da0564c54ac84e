"""vtryon: a command-line virtual try-on pipeline in eight steps."""

__version__ = "0.1.0"
