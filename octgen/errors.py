"""User-facing errors.

Anything a user can get wrong (a file, a flag, a prompt, a sketch) raises
:class:`InputError` with one readable sentence. The CLI prints it on one line and
exits with code 2; the app turns it into ``gr.Error``. Anything else is a bug.
"""


class InputError(ValueError):
    """Bad user input: the message is shown to the user as-is, on one line."""
