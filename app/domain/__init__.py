"""Pure business rules: no I/O, no framework, no clock. `now` is always a parameter."""
