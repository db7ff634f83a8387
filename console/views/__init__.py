"""Console views, one module per area; each names the action it needs
(``console.permissions.console_view``) and calls a selector or service."""
