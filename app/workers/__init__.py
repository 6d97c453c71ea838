"""Background loops (escalation timers, webhook dispatch). Each owns its transactions."""
