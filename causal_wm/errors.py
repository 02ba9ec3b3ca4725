"""User-facing errors. Each is reported by the CLI as one line with a non-zero exit; kept free of heavy imports so
that light commands (generate, info) never load torch."""


class CausalWMError(ValueError):
    """Base class of the errors that bad input gets."""


class TrainError(CausalWMError):
    """A training or evaluation request that cannot be carried out (bad data, config, run directory or checkpoint)."""
