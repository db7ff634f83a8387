"""The GB dispatch profile's contract, shared by the VTN and the FSP agent.

One definition of what both sides must agree on byte for byte: the payload and report
vocabulary (:mod:`.vocabulary`), RFC 8785 canonical JSON (:mod:`.canonical`), compact JWS
and JWKs (:mod:`.jose`), the acknowledgement and read-back documents (:mod:`.acks`), the
signed availability and meter-reading reports (:mod:`.report_signing`) and the offline
audit-chain verifier (:mod:`.audit_chain`). Nothing here imports Django.
"""

__version__ = "0.2.0"
