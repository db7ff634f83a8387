"""The FSP polling agent: a library and command line that reach the VTN over HTTPS only
(``requests`` and ``cryptography``, no Django). See docs/fsp-agent.md."""

__version__ = "0.1.0"
