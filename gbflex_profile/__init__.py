"""The GB dispatch profile's contract, shared by the VTN and the FSP agent.

One definition of what both sides must agree on byte for byte: the payload and report
vocabulary (:mod:`.vocabulary`), RFC 8785 canonical JSON (:mod:`.canonical`), compact JWS
and JWKs (:mod:`.jose`), the acknowledgement and read-back documents (:mod:`.acks`) and
the offline audit-chain verifier (:mod:`.audit_chain`). Nothing here imports Django.
"""

__version__ = "0.1.0"
