"""The errors a user can cause, each reported as one line naming what to fix (never a traceback)."""


class ParamsError(ValueError):
    """A bad key or value in params.yaml: the message names the key and what would be valid."""


class ArtifactError(ValueError):
    """Bad input data: the message names the file, the row and the field."""


class HubUnavailable(RuntimeError):
    """A Hub id is configured but the Hub can't be reached (offline mode)."""


class HubError(HubUnavailable):
    """A Hub request failed. The message never holds the token. (A HubUnavailable, so stages report it in one line.)"""
