"""Who is calling: the authenticated OAuth2 client as the API layer sees it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Caller:
    """An authenticated client: its OpenADR clientID, role and granted scopes.

    One Caller lives for one request; ``granted`` memoises the VEN's granted target
    labels so that privacy checks within the request query them once.
    """

    client_id: str
    name: str
    role: str  # "bl", "ven" or "fsp"
    scopes: frozenset[str]
    # Cache counters read when the request was authenticated (see vtn.generations).
    targeting_generation: int = field(default=0, compare=False, repr=False)
    auth_generation: int = field(default=0, compare=False, repr=False)
    remote_addr: str = field(default="", compare=False, repr=False)  # for the security log
    # An identity of the VTN's own code (the dispatch profile, the demo loader), not an
    # API client: not narrowed by owner (vtn.ownership); its code assigns owners itself.
    internal: bool = False
    granted: frozenset[str] | None = field(default=None, compare=False, repr=False)

    @property
    def is_bl(self) -> bool:
        return self.role == "bl"

    @property
    def is_ven(self) -> bool:
        return self.role == "ven"

    @property
    def is_fsp(self) -> bool:
        return self.role == "fsp"

    # DRF treats request.user as authenticated when this is true.
    is_authenticated = True
