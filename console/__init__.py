"""The operator console: server-rendered pages for network operator staff (docs/console.md)."""
