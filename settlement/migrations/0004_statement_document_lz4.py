"""Statement documents compressed with LZ4 on PostgreSQL (14 and later, when built with
it): a month's statement of 100 units is some 1.6 MB of JSON, and PostgreSQL's default
compression (pglz) spends about 10 ms more of the server's time on each one written,
for some 12 % less space. Other databases, and servers without LZ4, keep their default."""

from django.db import migrations

LZ4 = """
DO $$
BEGIN
    ALTER TABLE settlement_statement ALTER COLUMN document SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR syntax_error THEN
    RAISE NOTICE 'statement documents keep the default compression';
END $$;
"""

DEFAULT = """
DO $$
BEGIN
    ALTER TABLE settlement_statement ALTER COLUMN document SET COMPRESSION default;
EXCEPTION WHEN feature_not_supported OR syntax_error THEN
    NULL;
END $$;
"""


def lz4(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(LZ4)


def default(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DEFAULT)


class Migration(migrations.Migration):

    dependencies = [
        ("settlement", "0003_statement_document_written_once"),
    ]

    operations = [migrations.RunPython(lz4, default, elidable=False)]
