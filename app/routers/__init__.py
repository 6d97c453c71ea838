"""HTTP only: parse, authorize, call one service, shape the reply."""
