"""The HTTP API: routes, auth, errors, views (composed in `service.app`)."""
