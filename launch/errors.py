"""The one exception type the CLI turns into a single ``thalamus: error: ...`` line."""


class UsageError(ValueError):
    """A flag or argument is wrong; the message says what was given and what is expected."""
