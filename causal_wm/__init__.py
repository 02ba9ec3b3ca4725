"""causal-wm: object-centric causal world models."""

__version__ = "0.1.0"
