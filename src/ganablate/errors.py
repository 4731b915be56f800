"""The error classes, on the ground floor: every stage raises them and the CLI reports each as one line, exit code
2, so they import nothing of ganablate (and nothing heavy: the CLI catches them before it knows what a command
imported)."""


class ConfigError(ValueError):
    """A configuration value outside what the schema allows; the message is one line naming the key path."""


class DesignError(ValueError):
    """A study design that cannot run; one line naming the key. study.config wraps it in a ConfigError."""


class UsageError(ValueError):
    """Bad command-line input (an argument, a path); reported as one line naming it, exit code 2."""


class DataError(ValueError):
    """Data that cannot be found or read; the message names the file or the ways to provide it."""
