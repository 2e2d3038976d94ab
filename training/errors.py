"""The one error type the CLI turns into a one-line message and a non-zero exit."""


class LeadscoreError(Exception):
    """A problem the user can fix: the message says what was wrong and what to do."""
