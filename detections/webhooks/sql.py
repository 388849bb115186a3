"""Plain multi-row INSERTs for the tables the delivery workers fill fastest
(messages, attempts): Django's bulk_create spent several times more CPU
building the statement than the database spent running it."""

from django.db import connection

BATCH = 500


def insert_rows(model, columns: list[str], rows: list[tuple], *, returning: bool = False) -> list[int]:
    """Insert `rows` (values ready for the database, in `columns` order) into
    `model`'s table, BATCH rows a statement. With `returning`, where the database
    can return them, the new ids in order; otherwise none."""
    table = connection.ops.quote_name(model._meta.db_table)
    names = ", ".join(connection.ops.quote_name(column) for column in columns)
    row_sql = "(" + ", ".join(["%s"] * len(columns)) + ")"
    suffix = " RETURNING id" if returning and connection.features.can_return_rows_from_bulk_insert else ""
    pks = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), BATCH):
            batch = rows[start : start + BATCH]
            cursor.execute(
                f"INSERT INTO {table} ({names}) VALUES {', '.join([row_sql] * len(batch))}{suffix}",
                [value for row in batch for value in row],
            )
            if suffix:
                pks += [pk for (pk,) in cursor.fetchall()]
    return pks
