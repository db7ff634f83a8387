"""Who the dispatch profile is when it writes OpenADR objects through ``vtn.services``."""

from __future__ import annotations

from vtn.auth.caller import Caller
from vtn.auth.scopes import ALL_SCOPES

# The dispatch app acts on OpenADR objects as business logic.
# It reaches every operator's objects and assigns owners itself (vtn.ownership).
PROFILE_CALLER = Caller(client_id="gb-dispatch-profile", name="gb-dispatch-profile", role="bl",
                        scopes=frozenset(ALL_SCOPES), internal=True)
