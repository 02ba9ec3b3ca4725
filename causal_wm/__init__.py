"""causal-wm: object-centric causal world models.

``WorldModel``, ``load_run`` and ``metrics`` are loaded on first use, so that ``import causal_wm`` (and the
light commands such as ``causal-wm generate``) do not import torch.
"""

__version__ = "0.1.0"

__all__ = ["WorldModel", "ModelConfig", "load_run", "metrics"]


def __getattr__(name: str):
    if name in ("WorldModel", "ModelConfig"):
        from causal_wm import model

        return getattr(model, name)
    if name == "load_run":
        from causal_wm.train import load_run

        return load_run
    if name == "metrics":
        import importlib

        return importlib.import_module("causal_wm.metrics")
    raise AttributeError(f"module 'causal_wm' has no attribute {name!r}")
