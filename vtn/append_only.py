"""Append-only tables: rows are inserted once and never changed or deleted through the
ORM (the security log, dispatch revisions, the audit chain, product parameter changes).
Retention, the one exception, deletes through ``models.QuerySet.delete`` on purpose."""

from __future__ import annotations

from django.db import models


class AppendOnlyError(RuntimeError):
    """A row of an append-only table was about to be changed or deleted."""


class AppendOnlyQuerySet(models.QuerySet):
    """Refuses bulk changes and deletes of an append-only model's rows."""

    def update(self, **kwargs):
        raise AppendOnlyError(f"{self.model.append_only_noun} cannot be updated")

    def bulk_update(self, objs, fields, batch_size=None):
        raise AppendOnlyError(f"{self.model.append_only_noun} cannot be updated")

    def delete(self):
        raise AppendOnlyError(f"{self.model.append_only_noun} cannot be deleted")


class AppendOnlyModel(models.Model):
    """Base of an append-only model: a row is saved once, when it is created."""

    append_only_noun = "rows"  # what the model's rows are called in error messages

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise AppendOnlyError(f"{self.append_only_noun} cannot be updated")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(f"{self.append_only_noun} cannot be deleted")
