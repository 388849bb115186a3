"""Followers of the event log share one kind of cursor: the webhook fan-out's
single row becomes the cursor named "webhooks", at the same position."""

from django.db import migrations, models
from django.utils import timezone


def move_the_fan_out_cursor(apps, schema_editor):
    db = schema_editor.connection.alias
    fanned_out = apps.get_model("detections", "WebhookFanout").objects.using(db).filter(pk=1)
    position = fanned_out.values_list("last_seq", flat=True).first()
    if position is not None:
        apps.get_model("detections", "FollowerCursor").objects.using(db).update_or_create(
            name="webhooks", defaults={"position": position}
        )


def move_it_back(apps, schema_editor):
    db = schema_editor.connection.alias
    cursor = apps.get_model("detections", "FollowerCursor").objects.using(db).filter(name="webhooks")
    position = cursor.values_list("position", flat=True).first()
    if position is not None:
        apps.get_model("detections", "WebhookFanout").objects.using(db).update_or_create(
            pk=1, defaults={"last_seq": position}
        )


class Migration(migrations.Migration):
    dependencies = [("detections", "0010_webhook_fanout")]

    operations = [
        migrations.CreateModel(
            name="FollowerCursor",
            fields=[
                ("name", models.CharField(max_length=32, primary_key=True, serialize=False)),
                ("position", models.BigIntegerField(default=0)),
                ("updated_at", models.DateTimeField(default=timezone.now)),
            ],
        ),
        migrations.RunPython(move_the_fan_out_cursor, move_it_back),
        migrations.DeleteModel(name="WebhookFanout"),
    ]
