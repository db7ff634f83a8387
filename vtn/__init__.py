"""OpenADR 3 resources (programs, events, reports, subscriptions, vens, resources) and auth."""
