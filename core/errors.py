"""Errors that carry one clear sentence for the user."""


class FsprecError(Exception):
    """Bad input or a refused operation: exit code 2, nothing changed on disk."""


class CheckFailed(FsprecError):
    """A check ran and found a problem (NaN weights, parity over tolerance): exit code 1."""


class Cancelled(FsprecError):
    """The user cancelled a job; whatever it touched was rolled back."""
