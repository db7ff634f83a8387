"""OAuth2 client credentials, scopes, roles and the client-to-VEN binding."""
