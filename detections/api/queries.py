"""Query parameters as the API reads them, wherever they are declared (a
filter set, a query serializer, a paginator): a parameter given must hold a
value (`?until=` or `?status=` is a 400, not the parameter left out, which
would answer more than the client asked for), and `page_size` is an integer
from 1 to its maximum or a 400 (not silently the default)."""

from datetime import UTC, datetime

from django import forms
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from detections.core.formats import EARLIEST, LATEST

BLANK = "must not be empty; leave the parameter out instead."


def blank_parameters(query, names) -> list[str]:
    """Which of `names` the query gives with an empty value."""
    return [name for name in names if name in query and any(value == "" for value in query.getlist(name))]


class NoBlankValues(forms.Form):
    """A filter set's form that refuses an empty value (django-filter alone
    reads it as the filter not given)."""

    def clean(self):
        data = super().clean()
        for name in blank_parameters(self.data, self.fields):
            self.add_error(name, forms.ValidationError(BLANK, code="blank"))
        return data


class QuerySerializer(serializers.Serializer):
    """The query parameters of a view, checked as a serializer; an empty value
    is a 400 (DRF alone reads it as the parameter not given)."""

    def to_internal_value(self, data):
        blank = blank_parameters(data, self.fields)
        if blank:
            raise ValidationError({name: [BLANK] for name in blank}, code="blank")
        return super().to_internal_value(data)


def clamped(moment: datetime | None) -> datetime | None:
    """A time bound of a query within the times the database can hold: nothing
    is stored outside them, so the answer is the same, and no comparison with
    a year the database cannot write is ever sent to it."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return min(max(moment, EARLIEST), LATEST)


class QueryTimeField(serializers.DateTimeField):
    """A time bound of a query: ISO 8601 (UTC without an offset), clamped."""

    def __init__(self, **kwargs):
        super().__init__(default_timezone=UTC, **kwargs)

    def to_internal_value(self, value):
        if not isinstance(value, str):
            self.fail("invalid", format="ISO 8601")
        return clamped(super().to_internal_value(value))


def positive_integer(query, name: str, maximum: int | None = None) -> int | None:
    """The value of an integer parameter from 1 to `maximum`, None when it is
    not given; a ValidationError (400) naming it otherwise."""
    if name not in query:
        return None
    text = query.get(name)
    bound = f" from 1 to {maximum}" if maximum else " from 1 up"
    digits = text.isascii() and text.isdigit() and len(text) <= 18  # int() of more digits is slow, then refused
    if not digits or int(text) < 1 or (maximum and int(text) > maximum):
        raise ValidationError({name: [f"{name} must be an integer{bound}."]}, code="invalid")
    return int(text)
