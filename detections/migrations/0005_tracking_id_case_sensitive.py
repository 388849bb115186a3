from django.db import migrations

FORWARD = "ALTER TABLE detections_detection MODIFY tracking_id varchar(100) COLLATE utf8mb4_bin NOT NULL"
BACKWARD = "ALTER TABLE detections_detection MODIFY tracking_id varchar(100) NOT NULL"


def on_mysql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "mysql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    """Tracking ids are case-sensitive: "TRK-1" and "trk-1" are two vehicles.

    MySQL's default collation compares case-insensitively, which would make the
    unique (camera, tracking_id, time) constraint call them duplicates. SQLite and
    PostgreSQL compare bytes already.
    """

    atomic = False  # MySQL cannot run DDL inside a transaction
    dependencies = [("detections", "0004_device_key")]

    operations = [migrations.RunPython(on_mysql(FORWARD), on_mysql(BACKWARD))]
