"""User-facing errors. The CLI prints any of these as one line and exits with code 2."""


class DQNError(Exception):
    """Base of the errors caused by what the user asked for (not by a bug in dqn)."""


class ConfigError(DQNError, ValueError):
    """A config key, value, file or override is invalid."""


class UnsupportedSpaceError(DQNError, ValueError):
    """The environment's observation or action space is not one DQN here handles."""


class CheckpointError(DQNError):
    """A checkpoint or run folder is missing, incomplete or corrupt."""
