"""What a plate is to matching: one normal form for what the camera read, what
staff typed and what a search asks for, so that an OCR mistake between look-alike
characters costs no edit at all."""

import re

# Space, dash and dot separate groups on a plate; they carry nothing.
_SEPARATORS = re.compile(r"[\s.\-]+")
# Characters OCR confuses, folded to the digit they look like.
_LOOK_ALIKES = str.maketrans({"O": "0", "Q": "0", "I": "1", "Z": "2", "S": "5", "B": "8"})


def normalize(plate: str) -> str:
    """'34 abc-123' -> '34A8C123': upper case, separators removed, look-alikes folded."""
    return _SEPARATORS.sub("", plate.upper()).translate(_LOOK_ALIKES)
