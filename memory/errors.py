"""The one error type of the run store, and the short text of a cause, for one-line messages."""


class StoreError(Exception):
    """A run store or manifest is missing, damaged, too new, or used wrongly; the message says what to do."""


class StoreBusy(StoreError):
    """Another process holds the store's writer lock (a run that is still going, or still exiting)."""


def reason(exc: BaseException) -> str:
    """A short one-line description of an exception, to end an error message with."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
