"""Scopes of the two OpenADR documents and the defaults given to each role."""

from __future__ import annotations

READ_ALL = "read_all"
READ_TARGETS = "read_targets"
READ_VEN_OBJECTS = "read_ven_objects"
WRITE_PROGRAMS = "write_programs"
WRITE_EVENTS = "write_events"
WRITE_REPORTS = "write_reports"
WRITE_SUBSCRIPTIONS = "write_subscriptions"
WRITE_VENS = "write_vens"
# Not OpenADR scopes: an FSP back office reads its FSP's records (the GB profile's FSP
# API) and answers its settlement statements.
READ_FSP = "read_fsp"
ANSWER_STATEMENTS = "answer_statements"
# ...and posts its units' meter readings in bulk (the dispatch API's meter-readings).
WRITE_METER_DATA = "write_meter_data"

ALL_SCOPES = (
    READ_ALL, READ_TARGETS, READ_VEN_OBJECTS, WRITE_PROGRAMS, WRITE_EVENTS, WRITE_REPORTS,
    WRITE_SUBSCRIPTIONS, WRITE_VENS, READ_FSP, ANSWER_STATEMENTS, WRITE_METER_DATA,
)

OPENADR_SCOPES = (READ_ALL, READ_TARGETS, READ_VEN_OBJECTS, WRITE_PROGRAMS, WRITE_EVENTS,
                  WRITE_REPORTS, WRITE_SUBSCRIPTIONS, WRITE_VENS)
# What a client of each role may hold at all: OpenADR clients hold no FSP back-office
# scope (a site's gateway never answers a statement), a back office no OpenADR scope.
ROLE_SCOPES = {
    "bl": OPENADR_SCOPES,
    "ven": OPENADR_SCOPES,
    "fsp": (READ_FSP, ANSWER_STATEMENTS, WRITE_METER_DATA),
}

DEFAULT_SCOPES = {
    "bl": (READ_ALL, WRITE_PROGRAMS, WRITE_EVENTS, WRITE_REPORTS, WRITE_SUBSCRIPTIONS, WRITE_VENS),
    "ven": (READ_TARGETS, READ_VEN_OBJECTS, WRITE_REPORTS, WRITE_SUBSCRIPTIONS, WRITE_VENS),
    "fsp": (READ_FSP, ANSWER_STATEMENTS),
}

# Which scopes admit a read of each kind of object. 3.1 names read_targets for programs
# and events and read_ven_objects for VEN-owned objects; 3.0.1 names read_all for every
# read, which a VEN holds as these two. read_all admits every read in both versions.
READ_TARGETED = frozenset({READ_ALL, READ_TARGETS})
READ_OWNED = frozenset({READ_ALL, READ_VEN_OBJECTS})

# What a client that does not hold read_all is granted when it asks for read_all: the
# read scopes above that it holds. 3.0.1 VENs ask for read_all (the 3.0.1 document's
# only read scope) and mean "everything I may read"; object privacy still applies.
READ_ALL_EQUIVALENTS = (READ_TARGETS, READ_VEN_OBJECTS)
