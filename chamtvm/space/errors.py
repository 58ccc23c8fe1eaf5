"""The one error type of the space package (its own module so that every space module can
raise it without importing another)."""


class SpaceError(ValueError):
    """A space description or an architecture is invalid; the message says what and where."""
