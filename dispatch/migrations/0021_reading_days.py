"""Packed days of current meter readings (:class:`dispatch.models.ReadingDay`), kept by a
trigger on PostgreSQL.

Every statement that inserts, updates or deletes meter readings packs again, before it
returns, each (unit, reading type, UTC day) whose current readings it may have changed:
the days of the rows it inserted or deleted, and of the rows whose unit, type, start,
end, version, value or superseded time it updated; emptying the table empties the packs. The unit rows are locked first (``FOR
NO KEY UPDATE``, in order), as the intake of readings locks them, so two transactions
never pack one day from different views. Existing readings are packed here once, by
``dispatch_pack_all_reading_days()``, which also packs readings loaded in bulk with the
table's triggers off."""

import django.db.models.deletion
from django.db import migrations, models

PACK = """
CREATE FUNCTION dispatch_pack_reading_days(units bigint[], kinds text[], days date[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM dispatch_dispatchunit WHERE id = ANY(units) ORDER BY id
        FOR NO KEY UPDATE;
    DELETE FROM dispatch_readingday d
        USING unnest(units, kinds, days) AS k(unit_id, reading_type, day)
        WHERE d.unit_id = k.unit_id AND d.reading_type = k.reading_type AND d.day = k.day;
    INSERT INTO dispatch_readingday (unit_id, reading_type, day, readings)
    SELECT r.unit_id, r.reading_type, k.day,
           string_agg(timestamptz_send(r.start) || timestamptz_send(r."end")
                      || int8send(r.version)
                      || int8send(coalesce((r.value * 1000000)::int8,
                                           -9223372036854775808)),
                      ''::bytea ORDER BY r.start)
    FROM unnest(units, kinds, days) AS k(unit_id, reading_type, day)
    JOIN dispatch_meterreading r
      ON r.unit_id = k.unit_id AND r.reading_type = k.reading_type
     AND r.superseded_at IS NULL
     AND r.start >= k.day::timestamp AT TIME ZONE 'UTC'
     AND r.start < (k.day + 1)::timestamp AT TIME ZONE 'UTC'
    GROUP BY r.unit_id, r.reading_type, k.day;
END $$;

CREATE FUNCTION dispatch_reading_days_touched() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    units bigint[];
    kinds text[];
    days date[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(unit_id), array_agg(reading_type), array_agg(day)
          INTO units, kinds, days
          FROM (SELECT DISTINCT n.unit_id, n.reading_type::text AS reading_type,
                       (n.start AT TIME ZONE 'UTC')::date AS day FROM new_rows n) k;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(unit_id), array_agg(reading_type), array_agg(day)
          INTO units, kinds, days
          FROM (SELECT DISTINCT o.unit_id, o.reading_type::text AS reading_type,
                       (o.start AT TIME ZONE 'UTC')::date AS day FROM old_rows o) k;
    ELSE
        SELECT array_agg(unit_id), array_agg(reading_type), array_agg(day)
          INTO units, kinds, days
          FROM (SELECT DISTINCT touched.unit_id, touched.reading_type, touched.day FROM (
                  SELECT o.unit_id, o.reading_type::text AS reading_type,
                         (o.start AT TIME ZONE 'UTC')::date AS day,
                         n.unit_id AS new_unit, n.reading_type::text AS new_type,
                         (n.start AT TIME ZONE 'UTC')::date AS new_day
                    FROM old_rows o JOIN new_rows n ON n.id = o.id
                   WHERE (o.unit_id, o.reading_type, o.start, o."end", o.version)
                         IS DISTINCT FROM (n.unit_id, n.reading_type, n.start, n."end",
                                           n.version)
                      OR o.value IS DISTINCT FROM n.value
                      OR o.superseded_at IS DISTINCT FROM n.superseded_at) changed,
                LATERAL (VALUES (changed.unit_id, changed.reading_type, changed.day),
                                (changed.new_unit, changed.new_type, changed.new_day))
                        AS touched(unit_id, reading_type, day)) k;
    END IF;
    IF units IS NOT NULL THEN
        PERFORM dispatch_pack_reading_days(units, kinds, days);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER reading_days_insert AFTER INSERT ON dispatch_meterreading
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION dispatch_reading_days_touched();
CREATE TRIGGER reading_days_update AFTER UPDATE ON dispatch_meterreading
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION dispatch_reading_days_touched();
CREATE TRIGGER reading_days_delete AFTER DELETE ON dispatch_meterreading
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION dispatch_reading_days_touched();

CREATE FUNCTION dispatch_reading_days_emptied() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM dispatch_readingday;
    RETURN NULL;
END $$;

CREATE TRIGGER reading_days_truncate AFTER TRUNCATE ON dispatch_meterreading
    FOR EACH STATEMENT EXECUTE FUNCTION dispatch_reading_days_emptied();

-- Packed days are read whole: keep the large ones out of line without compressing them.
ALTER TABLE dispatch_readingday ALTER COLUMN readings SET STORAGE EXTERNAL;

-- Every day packed again from the readings: the existing readings here, and readings
-- loaded with the table's triggers off (as a bulk load may do) afterwards.
CREATE FUNCTION dispatch_pack_all_reading_days() RETURNS void LANGUAGE sql AS $$
    DELETE FROM dispatch_readingday;
    INSERT INTO dispatch_readingday (unit_id, reading_type, day, readings)
    SELECT r.unit_id, r.reading_type, (r.start AT TIME ZONE 'UTC')::date,
           string_agg(timestamptz_send(r.start) || timestamptz_send(r."end")
                      || int8send(r.version)
                      || int8send(coalesce((r.value * 1000000)::int8,
                                           -9223372036854775808)),
                      ''::bytea ORDER BY r.start)
    FROM dispatch_meterreading r
    WHERE r.superseded_at IS NULL
    GROUP BY r.unit_id, r.reading_type, (r.start AT TIME ZONE 'UTC')::date;
$$;

SELECT dispatch_pack_all_reading_days();
"""

UNPACK = """
DROP TRIGGER IF EXISTS reading_days_insert ON dispatch_meterreading;
DROP TRIGGER IF EXISTS reading_days_update ON dispatch_meterreading;
DROP TRIGGER IF EXISTS reading_days_delete ON dispatch_meterreading;
DROP TRIGGER IF EXISTS reading_days_truncate ON dispatch_meterreading;
DROP FUNCTION IF EXISTS dispatch_reading_days_emptied();
DROP FUNCTION IF EXISTS dispatch_reading_days_touched();
DROP FUNCTION IF EXISTS dispatch_pack_reading_days(bigint[], text[], date[]);
DROP FUNCTION IF EXISTS dispatch_pack_all_reading_days();
"""


def pack(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PACK)


def unpack(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(UNPACK)


class Migration(migrations.Migration):

    dependencies = [
        ('dispatch', '0020_meter_reading_indexes_once'),
    ]

    operations = [
        migrations.CreateModel(
            name='ReadingDay',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('reading_type', models.CharField(choices=[('USAGE', 'Usage'), ('DEMAND', 'Demand'), ('BASELINE', 'Baseline'), ('GB_REACTIVE', 'Gb Reactive')], max_length=16)),
                ('day', models.DateField(help_text='UTC day the readings start on')),
                ('readings', models.BinaryField()),
                ('unit', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='dispatch.dispatchunit')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('unit', 'reading_type', 'day'), name='one_reading_day')],
            },
        ),
        migrations.RunPython(pack, unpack, elidable=False),
    ]
