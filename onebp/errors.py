"""Error types shown to the user as one line (see ``onebp.cli``)."""


class UserError(Exception):
    """Bad input the user can fix: the message names the file, line, key or name at fault."""
