"""Fill Detection.plate_normalized for the rows stored before it existed.

In batches of id ranges, each its own transaction, so a site with millions of
rows neither holds one long transaction nor a lock on the whole table, and an
interrupted run picks up where it stopped (rows already filled are skipped).
The normal form is spelled out here, as it was when this ran: a migration must
not change when the code it once imported does.
"""

import re

from django.db import migrations, transaction

BATCH = 5000
_SEPARATORS = re.compile(r"[\s.\-]+")
_LOOK_ALIKES = str.maketrans({"O": "0", "Q": "0", "I": "1", "Z": "2", "S": "5", "B": "8"})


def _normalize(plate: str) -> str:
    return _SEPARATORS.sub("", plate.upper()).translate(_LOOK_ALIKES)


def fill(apps, schema_editor):
    Detection = apps.get_model("detections", "Detection")
    db = schema_editor.connection.alias
    rows = Detection.objects.using(db).exclude(plate="").filter(plate_normalized="")
    after = 0
    while True:
        with transaction.atomic(using=db):
            batch = list(rows.filter(pk__gt=after).order_by("pk").values_list("pk", "plate")[:BATCH])
            if not batch:
                return
            filled = [Detection(pk=pk, plate_normalized=_normalize(plate)) for pk, plate in batch]
            # One UPDATE ... CASE per 500 rows.
            Detection.objects.using(db).bulk_update(filled, ["plate_normalized"], batch_size=500)
        after = batch[-1][0]


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("detections", "0008_alerts_and_webhooks")]

    operations = [migrations.RunPython(fill, migrations.RunPython.noop, elidable=True)]
