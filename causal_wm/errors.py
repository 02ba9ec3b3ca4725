"""User-facing errors and the interrupt flag.

Each error is reported by the CLI as one line with a non-zero exit. This module is free of heavy imports so that
light commands (generate, info) never load torch."""

import threading


class CausalWMError(ValueError):
    """Base class of the errors that bad input gets."""


class TrainError(CausalWMError):
    """A training or evaluation request that cannot be carried out (bad data, config, run directory or checkpoint)."""


STOP = threading.Event()
"""Set by the CLI's SIGINT/SIGTERM handler. A KeyboardInterrupt raised while Python runs a garbage-collection
callback (pymunk frees spaces that way) is swallowed, so long loops also poll this flag."""


def check_stop() -> None:
    """Raise KeyboardInterrupt if a stop was requested."""
    if STOP.is_set():
        raise KeyboardInterrupt
