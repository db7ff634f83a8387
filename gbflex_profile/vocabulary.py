"""The names of the GB dispatch profile (docs/gb-dispatch-profile.md).

Payload types, program attributes, setpoint fields and the standing report events, in
one place so that the VTN and the agent can only spell them one way.
"""

from __future__ import annotations

PROFILE = "gb-dispatch/1"  # the ``profile`` member of every signed revision document

# -- dispatch events -------------------------------------------------------------------------

# Standard payload types (OpenADR 3.1.1 enumerations).
SETPOINT_PAYLOADS = {"ABSOLUTE": "DISPATCH_SETPOINT", "DELTA": "DISPATCH_SETPOINT_RELATIVE"}
STATUS_PAYLOAD = "DISPATCH_INSTRUCTION"
PRICE_PAYLOAD = "PRICE"
EVENT_DESCRIPTOR = "EVENT_PAYLOAD_DESCRIPTOR"
REPORT_DESCRIPTOR = "REPORT_PAYLOAD_DESCRIPTOR"

# Profile payloads carried in interval 0 of every dispatch event.
GB_NETWORK_OPERATOR = "GB_NETWORK_OPERATOR"
GB_DISPATCH_REF = "GB_DISPATCH_REF"
GB_REVISION = "GB_REVISION"
GB_DISPATCH_UNIT = "GB_DISPATCH_UNIT"  # values: [fspId, unit reference]
GB_CONTRACT = "GB_CONTRACT"
GB_PRODUCT = "GB_PRODUCT"
GB_URGENCY = "GB_URGENCY"
GB_INSTRUCTION_TIME = "GB_INSTRUCTION_TIME"
GB_SERVICE_TYPE = "GB_SERVICE_TYPE"
GB_SIGNATURE = "GB_SIGNATURE"  # compact JWS of the canonical revision document

# Program attributes of a product program.
GB_NOTICE_PERIOD = "GB_NOTICE_PERIOD"
GB_RAMP_TIME = "GB_RAMP_TIME"
GB_QUANTITY = "GB_QUANTITY"
GB_SETPOINT_TYPES = "GB_SETPOINT_TYPES"
GB_HEARTBEAT_INTERVAL = "GB_HEARTBEAT_INTERVAL"
GB_AVAILABILITY_PAID = "GB_AVAILABILITY_PAID"
GB_PROGRAM_ATTRIBUTES = (GB_PRODUCT, GB_NETWORK_OPERATOR, GB_NOTICE_PERIOD, GB_RAMP_TIME,
                         GB_QUANTITY, GB_SETPOINT_TYPES, GB_HEARTBEAT_INTERVAL,
                         GB_AVAILABILITY_PAID)

# Dispatch status values that end a dispatch (they carry no setpoints).
STOPS = ("STOP", "EMERGENCY_STOP")
# Event priority of each urgency (0 is the most urgent).
URGENCY_PRIORITY = {"EMERGENCY": 0, "WARNING": 1, "ADVISORY": 2}
# The fields of one setpoint as an acknowledgement reads it back, in order.
SETPOINT_FIELDS = ("setpointTime", "volume", "units", "setpointType")
# Units of a setpoint volume per service type (GB_SERVICE_TYPE), and of its price.
SERVICE_TYPE_UNITS = {"REAL": "KW", "REACTIVE": "KVAR"}
PRICE_UNITS = {"REAL": "KWH", "REACTIVE": "KVARH"}

# -- acknowledgements (report payloads on the dispatch's event) -------------------------------

GB_ACK_STAGE = "GB_ACK_STAGE"  # RECEIVED | ACTIONED | REFUSED
GB_ACK_OUTCOME = "GB_ACK_OUTCOME"  # ACTIONED only: ACCEPTED | FAILED
GB_ACK_REASON = "GB_ACK_REASON"  # why FAILED (optional) or REFUSED (required)
GB_ACK_JWS = "GB_ACK_JWS"  # the FSP's compact JWS over the read-back document
GB_ACK_STATUS = "GB_ACK_STATUS"  # the dispatch status as understood (RUN, STOP, ...)
GB_ACK_SETPOINTS = "GB_ACK_SETPOINTS"  # flat: SETPOINT_FIELDS of each setpoint in turn
# When the FSP signed (UTC, "...Z"): the ``signedAt`` member of every signed FSP document;
# an acknowledgement also carries it as this payload, so the read-back mirrors it.
GB_SIGNED_AT = "GB_SIGNED_AT"

RECEIVED, ACTIONED, REFUSED = "RECEIVED", "ACTIONED", "REFUSED"
STAGES = (RECEIVED, ACTIONED, REFUSED)
ACTIONED_OUTCOMES = ("ACCEPTED", "FAILED")

# -- the FSP's standing report events ----------------------------------------------------------

# Program kinds: program ``GB-<OP>-<KIND>``, one event per FSP ``GB-<OP>-<KIND>/<fspId>``.
HEARTBEAT, AVAILABILITY, METERING = "HEARTBEAT", "AVAILABILITY", "METERING"
REPORT_KINDS = (HEARTBEAT, METERING, AVAILABILITY)
# The interval payload that tells a generic client what each standing event is for.
GB_HEARTBEAT = "GB_HEARTBEAT"
GB_AVAILABILITY = "GB_AVAILABILITY"
GB_METERING = "GB_METERING"

# Report payloads.
OPERATING_STATE = "OPERATING_STATE"
GB_AVAILABLE_KW = "GB_AVAILABLE_KW"  # kW >= 0 a unit can deliver
# The agent's local log of an outage it rode out: one JSON document as a string, sent on
# the FSP's heartbeat event once the VTN is reachable again.
GB_OFFLINE_LOG = "GB_OFFLINE_LOG"
USAGE, DEMAND, BASELINE = "USAGE", "DEMAND", "BASELINE"  # kWh, mean kW, kW
# Reactive energy over the interval, kVArh (+ absorbed from the network, - supplied to it).
# OpenADR 3.1.1 has no report payload type for reactive power, hence a profile one.
GB_REACTIVE = "GB_REACTIVE"
READING_TYPES = (USAGE, DEMAND, BASELINE, GB_REACTIVE)
DATA_QUALITY = "DATA_QUALITY"  # OpenADR 3.1.1 report payload
QUALITIES = ("OK", "MISSING", "ESTIMATED", "BAD")
GB_CORRECTION = "GB_CORRECTION"  # [true]: the interval corrects readings already sent

# A signed availability or metering report carries, besides its units' resources, one
# resource of this name whose single interval holds one payload GB_REPORT_JWS: the site's
# compact JWS over the report's statement (gbflex_profile.report_signing).
GB_REPORT_SIGNATURE = "GB_REPORT_SIGNATURE"
GB_REPORT_JWS = "GB_REPORT_JWS"
