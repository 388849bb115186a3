"""What a plate is to matching: one normal form for what the camera read, what
staff typed and what a search asks for, so that an OCR mistake between look-alike
characters costs no edit at all."""

import re
from collections import defaultdict
from collections.abc import Iterable

from django.db.models.functions import Length
from rapidfuzz.distance import Levenshtein

# Space, dash and dot separate groups on a plate; they carry nothing.
_SEPARATORS = re.compile(r"[\s.\-]+")
# Characters OCR confuses, folded to the digit they look like.
_LOOK_ALIKES = str.maketrans({"O": "0", "Q": "0", "I": "1", "Z": "2", "S": "5", "B": "8"})


def normalize(plate: str) -> str:
    """'34 abc-123' -> '34A8C123': upper case, separators removed, look-alikes folded."""
    return _SEPARATORS.sub("", plate.upper()).translate(_LOOK_ALIKES)


# What a normalised plate is spelled with: digits and the letters left after folding.
ALPHABET = "0123456789" + "".join(c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in "OQIZSB")


def within_one_edit(normalized: str, alphabet: str | set[str] = ALPHABET) -> set[str]:
    """Every spelling at most one edit (Levenshtein) from `normalized`, over `alphabet`."""
    found = {normalized}
    for i in range(len(normalized) + 1):
        head, tail = normalized[:i], normalized[i:]
        found.update(head + c + tail for c in alphabet)  # insert
        if tail:
            found.add(head + tail[1:])  # delete
            found.update(head + c + tail[1:] for c in alphabet)  # substitute
    return found


class OneEditIndex:
    """Plates one edit (Levenshtein) from a given one, among many, without
    measuring each: two plates at most one edit apart share a deletion key (the
    plate itself, or the plate less one character), and only the few plates
    sharing one are measured. Any characters, not only ALPHABET's."""

    def __init__(self, plates: Iterable[str]):
        self.by_key: dict[str, set[str]] = defaultdict(set)
        for plate in plates:
            for key in _deletion_keys(plate):
                self.by_key[key].add(plate)

    def near(self, plate: str) -> set[str]:
        """The indexed plates exactly one edit from `plate`."""
        found = set()
        for key in _deletion_keys(plate):
            found |= self.by_key.get(key, set())
        found.discard(plate)
        return {other for other in found if Levenshtein.distance(plate, other, score_cutoff=1) <= 1}


def _deletion_keys(plate: str) -> set[str]:
    return {plate} | {plate[:i] + plate[i + 1 :] for i in range(len(plate))}


def plate_like(detections, plate: str, max_edits: int):
    """`detections` whose normalised plate is within `max_edits` of `plate`'s.

    Up to one edit, by the index: the few hundred spellings one edit away are
    looked up with IN (...). Two edits would be far too many spellings, so the
    distinct stored plates of a close length are measured with rapidfuzz first.
    """
    target = normalize(plate)
    if max_edits == 0:
        return detections.filter(plate_normalized=target)
    if max_edits == 1:
        return detections.filter(plate_normalized__in=within_one_edit(target))
    lengths = range(max(1, len(target) - max_edits), len(target) + max_edits + 1)
    stored = (
        detections.model.objects.annotate(plate_length=Length("plate_normalized"))
        .filter(plate_length__in=lengths)
        .values_list("plate_normalized", flat=True)
        .distinct()
    )
    near = [p for p in stored.iterator() if Levenshtein.distance(target, p, score_cutoff=max_edits) <= max_edits]
    return detections.filter(plate_normalized__in=near)
