from django.db import migrations


def create_feed_state(apps, schema_editor):
    apps.get_model("detections", "FeedState").objects.get_or_create(pk=1)


class Migration(migrations.Migration):
    """The single row that numbers events and counts detections."""

    dependencies = [("detections", "0001_initial")]

    operations = [migrations.RunPython(create_feed_state, migrations.RunPython.noop)]
