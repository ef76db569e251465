"""Which student ids are safe to use as a folder name and to hand to nbgrader.

nbgrader treats a student id as a glob and strips its spaces, and every tool joins it into a path:
an id such as ``*``, ``honest2 `` or ``../x`` reaches other students' files. Collect refuses such ids
and the grader can refuse the ones already under ``build/submitted``.
"""

import re
import unicodedata

MAX_LENGTH = 128  # nbgrader's gradebook keeps ids in a String(128) column
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.@+_-]*")
GLOB_CHARACTERS = "*?[]{}"


def safe_student_id(text: str) -> str | None:
    """Why ``text`` is not a safe student id, or None when it is.

    Safe: ASCII letters, digits and ``.@+_-``, at most 128 characters, not starting with a dot or a
    dash. The reason names the first problem found, e.g. ``"glob character '*'"``.
    """
    if not text:
        return "empty"
    if text in (".", ".."):
        return f"{text!r} is a path, not a name"
    if text != text.strip():
        return "surrounding whitespace"
    if any(unicodedata.category(c) == "Cs" for c in text):
        return "not valid UTF-8"
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in text):
        return "control character"
    for char in "/\\":
        if char in text:
            return f"path separator {char!r}"
    for char in text:
        if char in GLOB_CHARACTERS:
            return f"glob character {char!r}"
    if text.startswith("."):
        return "leading dot"
    if text.startswith("-"):
        return "leading dash"
    if len(text) > MAX_LENGTH:
        return f"longer than {MAX_LENGTH} characters"
    if not SAFE_ID.fullmatch(text):
        bad = next(c for c in text if not SAFE_ID.fullmatch(f"a{c}"))
        return f"character {bad!r} (only ASCII letters, digits and . @ + _ - are allowed)"
    return None
