"""Domain signals: other apps react to OpenADR object changes without vtn knowing them."""

from django.dispatch import Signal

# Sent after commit with: object_type ("PROGRAM", "EVENT", ...), operation
# ("CREATE", "UPDATE", "DELETE") and instance (for DELETE, the instance as it was).
object_changed = Signal()

# Sent when a client read the MQTT topics of a ven (/notifiers/mqtt/topics/vens/{venID}...),
# with client_id, ven_id and object_type ("EVENT", "PROGRAM", "RESOURCE", or None for the
# ven itself): the evidence that a VEN discovered where its notifications arrive.
topics_discovered = Signal()
