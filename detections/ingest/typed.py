"""Request bodies held to the types their schema gives: a JSON value must have
the type of its field (DRF alone takes "7" or 7.0 for an integer, false for a
number, 0 for a boolean), while a form's text is still read as text. The
ingest body and the API's serializers are built on these fields.
"""

from contextvars import ContextVar

from rest_framework import serializers
from rest_framework.fields import empty

# Whether the body being validated is a form (multipart or urlencoded), whose
# values are all text, rather than JSON, whose values have the types the
# schema gives them. Set by `TypedBody` for the fields under it.
_form_body: ContextVar[bool] = ContextVar("form_body", default=False)


def in_form_body() -> bool:
    """Whether the field being validated is a form's (text) rather than JSON's."""
    return _form_body.get()


class TypedBody:
    """A serializer whose fields hold JSON values to the types the schema
    gives them (DRF alone takes "7" or 7.0 for an integer, false for a number,
    0 for a boolean), while a form's text is still read as before."""

    def to_internal_value(self, data):
        token = _form_body.set(hasattr(data, "getlist"))
        try:
            return super().to_internal_value(data)
        finally:
            _form_body.reset(token)


class StrictCharField(serializers.CharField):
    """Text: DRF's CharField would take 7 for "7"."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data):
        if not in_form_body() and (isinstance(data, bool) or not isinstance(data, int)):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    def to_internal_value(self, data):
        if not in_form_body() and (isinstance(data, bool) or not isinstance(data, (int, float))):
            self.fail("invalid")
        return super().to_internal_value(data)


class FormBooleanField(serializers.BooleanField):
    """A boolean: true or false in JSON; in a form, which a form or multipart
    body may leave out as a JSON one may, its default then applying. DRF reads
    an absent field of a form as an unticked checkbox, false, which would make
    every list, rule or webhook created from a form inactive."""

    default_empty_html = empty

    def to_internal_value(self, data):
        if not in_form_body() and not isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


def any_case_pattern(words) -> str:
    """A pattern (ECMA 262, which has no flag for it) matching any of `words` in any letter case."""
    spelled = ("".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word) for word in words)
    return f"^({'|'.join(spelled)})$"
