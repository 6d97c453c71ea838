"""Use cases: load rows, call the domain, write rows and outbox events. Never commit."""
