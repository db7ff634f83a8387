"""The FSP polling agent: a library and command line that reach the VTN over HTTPS only
(``urllib3``, ``cryptography`` and the profile package ``gbflex_profile``, no
Django). See docs/fsp-agent.md."""

__version__ = "0.1.0"
