"""The e-mail channel's rules, pure (no I/O, no clock: ``now`` is a parameter).

- ``facts``: what the rules read from a message's headers (addresses, Message-IDs, the
  automatic-mail markers, a delivery status notification).
- ``threading``: the ticket token in subjects, our Message-IDs, References chains.
- ``loops``: is a message automatic (auto-reply, bounce), and may we answer it.
- ``authresults``: Authentication-Results of a trusted border MTA: DMARC / aligned SPF, DKIM.
- ``routing``: where a message goes: a reply on a ticket, a new ticket, or kept as rejected.
- ``notices``: which message a customer gets for which event.
- ``delivery``: the retry schedule of outbound messages.
"""
