"""Who is calling: the authenticated OAuth2 client as the API layer sees it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated client: its OpenADR clientID, role and granted scopes."""

    client_id: str
    name: str
    role: str  # "bl" or "ven"
    scopes: frozenset[str]

    @property
    def is_bl(self) -> bool:
        return self.role == "bl"

    @property
    def is_ven(self) -> bool:
        return self.role == "ven"

    # DRF treats request.user as authenticated when this is true.
    is_authenticated = True
