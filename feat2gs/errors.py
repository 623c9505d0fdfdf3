"""Errors that carry a message meant for the user (the CLI prints them without a traceback)."""


class Feat2GSError(Exception):
    """Base class: a problem the user can fix; the message names the file or option at fault."""


class DatasetError(Feat2GSError):
    """The dataset layout, split file or an image is wrong."""


class ConfigError(Feat2GSError):
    """An unknown name or an invalid option value."""


class TrainingDivergedError(Feat2GSError):
    """The loss became NaN or infinite."""
