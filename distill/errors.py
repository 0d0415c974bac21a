"""The one exception type users see."""


class KwsError(Exception):
    """An error the user can fix: bad audio, bad config, a missing file or extra.

    The CLI prints the message without a traceback and exits with ``exit_code``.
    """

    exit_code = 1


class ConfigError(KwsError):
    """Unknown config key or bad value (CLI exit code 2)."""

    exit_code = 2


class AudioError(KwsError):
    """An audio file that cannot be used; the message names the file."""


class NoEngineError(KwsError):
    """None of the requested TTS engines can run here (the message says why each cannot)."""


def check(ok: bool, message: str) -> None:
    """Raise ``ConfigError(message)`` unless ``ok``: the one validation helper of every config dataclass."""
    if not ok:
        raise ConfigError(message)
