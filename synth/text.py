"""Keyword text: validation, safe label names, and per-utterance spelling/punctuation variants."""
from __future__ import annotations

import re
import unicodedata

import numpy as np

from distill.errors import KwsError

MAX_TEXT_CHARS = 100
# Letters (any script), digits, spaces and the punctuation the variants use. Quotes, brackets, slashes and
# control characters are refused: they mean nothing to a keyword and some engines read them as markup.
_PUNCT = "'.,!?-"
_LABEL = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
RESERVED = ("_unknown_", "_silence_")

# (ending, weight): question and exclamation change the engines' intonation; "..." lengthens the tail.
_ENDINGS = (("", 0.35), (".", 0.25), ("!", 0.22), ("?", 0.12), ("...", 0.06))


def check_text(text: str) -> str:
    """Return ``text`` stripped, or raise ``KwsError`` saying what is wrong with it.

    Refused: empty, only punctuation/spaces, longer than ``MAX_TEXT_CHARS``, or characters other than
    letters, digits, spaces and ``' . , ! ? -`` (``_`` reads as a space).
    """
    if not isinstance(text, str):
        raise KwsError(f"keyword text must be a string, got {type(text).__name__}")
    stripped = " ".join(text.replace("_", " ").split())  # words=hey_nova means "hey nova"
    if not stripped:
        raise KwsError("keyword text is empty; give a word or short phrase such as words=yes,no")
    if len(stripped) > MAX_TEXT_CHARS:
        raise KwsError(f"keyword text is {len(stripped):,} characters long; keywords are short phrases "
                       f"(at most {MAX_TEXT_CHARS} characters)")
    if not any(ch.isalnum() for ch in stripped):
        raise KwsError(f"keyword text {stripped!r} has no letters or digits; give a word to speak")
    bad = sorted({ch for ch in stripped if not (ch.isalnum() or ch == " " or ch in _PUNCT)})
    if bad:
        raise KwsError(f"keyword text {stripped!r} has characters a keyword cannot contain: {''.join(bad)!r}; "
                       "use letters, digits, spaces and ' . , ! ? -")
    return stripped


def safe_label(text: str) -> str:
    """Label (folder) name for a keyword: lower case, spaces to ``_``, only ``a-z 0-9 _ -``.

    >>> safe_label("Hey Nova")
    'hey_nova'
    """
    text = check_text(text)
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()  # café -> cafe
    label = re.sub(r"\s+", "_", re.sub(r"[.,!?']", "", ascii_text).strip().lower())
    if not _LABEL.match(label):
        raise KwsError(f"keyword {text!r} gives label {label!r}, which is not a safe folder name; "
                       "labels use letters a-z, digits, '-' and '_' (spaces become '_'), at most 64 characters")
    return label


def spoken_form(text: str) -> str:
    """The words of ``text`` without punctuation, lower case (what the engines are asked to say)."""
    return " ".join(re.sub(r"[.,!?]", " ", check_text(text)).lower().split())


def sample_variant(text: str, rng: np.random.Generator) -> str:
    """One written variant of ``text``: case, a comma after the first word of a phrase, an ending.

    ``"hey nova"`` may become ``"Hey, Nova!"``, ``"hey nova?"`` or ``"Hey nova..."``. Engines read
    punctuation as prosody (questions rise, exclamations are louder and shorter), so variants add
    intonation diversity at no cost.
    """
    words = spoken_form(text).split()
    case = rng.choice(3, p=[0.45, 0.4, 0.15])  # lower, Sentence, Title
    if case == 1:
        words[0] = words[0][:1].upper() + words[0][1:]
    elif case == 2:
        words = [w[:1].upper() + w[1:] for w in words]
    if len(words) > 1 and rng.random() < 0.3:
        words[0] += ","
    endings, weights = zip(*_ENDINGS)
    return " ".join(words) + endings[rng.choice(len(endings), p=np.array(weights) / sum(weights))]


def parse_words(words: str | list[str] | tuple[str, ...]) -> list[str]:
    """Keyword list from ``"yes,no,up"`` or a list; checks each and refuses duplicate labels."""
    items = words.split(",") if isinstance(words, str) else list(words)
    out, labels = [], {}
    for w in items:
        w = check_text(w)
        label = safe_label(w)
        if label in labels:
            raise KwsError(f"keywords {labels[label]!r} and {w!r} give the same label {label!r}")
        labels[label] = w
        out.append(w)
    if not out:
        raise KwsError("no keywords given; use words=yes,no,up")
    return out
