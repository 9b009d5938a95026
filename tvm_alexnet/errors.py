"""The base of every error that a user's input causes (the CLI prints these as one line)."""


class UserError(ValueError):
    pass
