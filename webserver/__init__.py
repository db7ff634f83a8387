"""The process that serves the apps: the embedded gunicorn server (``manage.py serve``),
the health probes, the security-header and body-size middleware, and the Django error
handlers that answer the console with its pages and everything else with problems."""
