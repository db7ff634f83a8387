"""Domain signals: other apps react to OpenADR object changes without vtn knowing them."""

from django.dispatch import Signal

# Sent after commit with: object_type ("PROGRAM", "EVENT", ...), operation
# ("CREATE", "UPDATE", "DELETE") and instance (for DELETE, the instance as it was).
object_changed = Signal()
