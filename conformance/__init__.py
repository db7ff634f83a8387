"""The conformance sandbox: scenarios driven against an FSP's own VEN implementation and
graded against the GB dispatch profile (docs/conformance.md)."""
