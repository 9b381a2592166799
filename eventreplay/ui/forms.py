"""Flask-WTF forms. Every form that changes something carries a CSRF token (CSRFProtect guards
every POST of the app as well, so a form without one is refused even if a view forgets).

The forms read what the user typed (times, numbers, JSON text); rules about the request itself
(since before until, a match's values, which fields go together) are the API's, and its field errors
are shown beside the fields."""
from __future__ import annotations

import math
from datetime import timezone

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField, DateTimeLocalField, FloatField, IntegerField, SelectField, SelectMultipleField,
    StringField, SubmitField, TextAreaField, widgets,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, NumberRange, Optional, Regexp, ValidationError

from eventreplay.store.query import parse_match

# datetime-local inputs send minutes, or seconds when the user typed them
DATETIME_FORMATS = ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"]
# RabbitMQ allows up to 255 bytes of any text in a queue name; refuse only what cannot be meant
NAME = Regexp(r"^[^\s].*$", message="Must not start with a space.")


def finite(_form, field) -> None:
    """FloatField reads "inf", "nan" and "1e999" as numbers; JSON cannot carry them to the API."""
    if field.data is not None and not math.isfinite(field.data):
        raise ValidationError("Enter a finite number.")


class MultiCheckboxField(SelectMultipleField):
    """Several types at once, as checkboxes: readable and usable at phone width, unlike <select multiple>."""

    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


def utc_iso(moment) -> str | None:
    # datetime-local has no zone; the form labels say UTC, and the API reads naive times as UTC too
    return moment.replace(tzinfo=timezone.utc).isoformat() if moment else None


class ReplayForm(FlaskForm):
    # field names event_type and target_queue are the prototype's: its form posts keep working
    event_type = StringField("Event type", validators=[Optional(), Length(max=200)],
                             description="Pick a stored type or type any name.")
    # the API replays every type when none is named; an empty type alone stays an error (a
    # forgotten field must not replay the whole archive), so "all" is an explicit choice
    all_types = BooleanField("All event types", description="Replay every stored type (leave the event type empty).")
    event_types = MultiCheckboxField("More event types", choices=[], validate_choice=False)
    target_queue = StringField("Target queue", validators=[Optional(), Length(max=255), NAME])
    target_exchange = StringField("Target exchange (instead of a queue)", validators=[Optional(), Length(max=255), NAME])
    routing_key = StringField("Routing key", validators=[Optional(), Length(max=255)],
                              description="Empty: each event's original routing key.")
    since = DateTimeLocalField("From (UTC, inclusive)", format=DATETIME_FORMATS, validators=[Optional()])
    until = DateTimeLocalField("Until (UTC, exclusive)", format=DATETIME_FORMATS, validators=[Optional()])
    match = TextAreaField("Payload match (JSON object)", validators=[Optional(), Length(max=2000)],
                          description='Equality on top-level fields, e.g. {"order_id": "…"}.')
    limit = IntegerField("Limit", validators=[Optional(), NumberRange(min=1)], description="At most this many events.")
    rate = FloatField("Rate (events/s)", validators=[Optional(), finite, NumberRange(min=0.001)])
    speed = FloatField("Speed (× original spacing)", validators=[Optional(), finite, NumberRange(min=0.001)],
                       description="1 = real time, 60 = a minute per second.")
    create_queue = BooleanField("Create the queue if missing")
    preview = SubmitField("Preview")
    submit = SubmitField("Start replay")

    def validate(self, extra_validators=None) -> bool:
        # Rules across fields run here: an Optional() field skips its own inline validators
        # when it is empty, and "empty" is exactly what these rules are about.
        valid = super().validate(extra_validators)
        named_types = bool((self.event_type.data or "").strip() or self.event_types.data)
        if self.all_types.data and named_types:
            self.all_types.errors.append("Untick “All event types” or leave the event types empty.")
            valid = False
        elif not named_types and not self.all_types.data:
            self.event_type.errors.append("Choose an event type.")
            valid = False
        # the API refuses a routing key without an exchange (422); never drop it silently
        if self.routing_key.data and not self.target_exchange.data:
            self.routing_key.errors.append(
                "A routing key goes with a target exchange; leave it empty for a queue.")
            valid = False
        # a preview publishes nothing, so it needs no target (the API agrees: dry_run needs none)
        if not self.preview.data:
            if not self.target_queue.data and not self.target_exchange.data:
                self.target_queue.errors.append("Enter the queue to replay into.")
                valid = False
            elif self.target_queue.data and self.target_exchange.data:
                self.target_queue.errors.append("Give a queue or an exchange, not both.")
                valid = False
        return valid

    def validate_speed(self, field):
        if field.data and self.rate.data:
            raise ValidationError("Use a rate or a speed, not both.")

    def validate_match(self, field):
        # the text is the form's own way to enter the match: read it by the API's rule (store/query.py)
        if field.data:
            try:
                parse_match(field.data)
            except ValueError as error:
                raise ValidationError(str(error)) from None

    def to_request(self) -> dict:
        """The ReplayRequest of docs/api.md; empty fields are left out so the API's defaults apply."""
        request = {
            "event_type": (self.event_type.data or "").strip() or None,
            "event_types": [t for t in self.event_types.data or [] if t] or None,
            "target_queue": self.target_queue.data or None,
            "target_exchange": self.target_exchange.data or None,
            "routing_key": self.routing_key.data or None,
            "since": utc_iso(self.since.data),
            "until": utc_iso(self.until.data),
            "match": parse_match(self.match.data) if self.match.data else None,
            "limit": self.limit.data,
            "rate": self.rate.data,
            "speed": self.speed.data,
            "create_queue": True if self.create_queue.data else None,
        }
        return {key: value for key, value in request.items() if value is not None}


class ActionForm(FlaskForm):
    """Cancel / resume: no fields, only the CSRF token."""


class EventSearchForm(FlaskForm):
    # A GET search changes nothing, and its URL must be shareable and bookmarkable: no CSRF token.
    class Meta:
        csrf = False

    event_type = SelectField("Event type", choices=[], validate_choice=False, validators=[Optional()])
    since = DateTimeLocalField("From (UTC)", format=DATETIME_FORMATS, validators=[Optional()])
    until = DateTimeLocalField("Until (UTC)", format=DATETIME_FORMATS, validators=[Optional()])
    limit = SelectField("Per page", choices=[SelectChoice(n) for n in ("25", "50", "100")], default="50")
