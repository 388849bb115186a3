"""The event log becomes the webhook outbox: the write path stops writing
messages, and the delivery workers make them from the events after a cursor.

The cursor starts at the feed's head, and so does every endpoint that exists
already, so an upgrade sends no history. An event committed by a process of
the previous release after this ran has its message written by that process
and made again by the fan-out: it reaches its endpoints twice, with two
webhook-ids (docs/alerts.md, "Upgrading").
"""

from django.db import migrations, models


def start_at_the_head(apps, schema_editor):
    db = schema_editor.connection.alias
    FeedState = apps.get_model("detections", "FeedState")
    head = FeedState.objects.using(db).filter(pk=1).values_list("last_seq", flat=True).first() or 0
    apps.get_model("detections", "WebhookFanout").objects.using(db).update_or_create(
        pk=1, defaults={"last_seq": head}
    )
    apps.get_model("detections", "WebhookEndpoint").objects.using(db).update(after_seq=head)


class Migration(migrations.Migration):
    dependencies = [("detections", "0009_fill_plate_normalized")]

    operations = [
        migrations.CreateModel(
            name="WebhookFanout",
            fields=[
                ("id", models.PositiveSmallIntegerField(default=1, primary_key=True, serialize=False)),
                ("last_seq", models.BigIntegerField(default=0)),
            ],
        ),
        migrations.AddField(
            model_name="event",
            name="to_webhooks",
            field=models.BooleanField(db_default=True, default=True),
        ),
        migrations.AddField(
            model_name="webhookendpoint",
            name="after_seq",
            field=models.BigIntegerField(
                null=True, editable=False, help_text="receives the events with a seq above this"
            ),
        ),
        migrations.RunPython(start_at_the_head, migrations.RunPython.noop),
    ]
