"""Schemathesis hooks for tests/fuzz_harness.py (loaded with SCHEMATHESIS_HOOKS).

The built-in `positive_data_acceptance` check is configured (tests/schemathesis.toml) to
let a schema-valid request be refused with a 422: some rules cannot be stated in a JSON
Schema (an `occurred_at` before the ticket's latest event, an estimate below what is
charged, a time zone the calendar library does not know...). That allowance must not hide
a contract that lies, so this check is stricter: a request generated as *valid* may be
refused with a 422 only for such a rule. A 422 naming any request-validation error (a
pydantic type, or the app's own schema-level kinds), a 400 or a 415 means the server
refused what its own OpenAPI document allows: a failure.
"""

from __future__ import annotations

from typing import Any, get_args

import schemathesis
from pydantic_core.core_schema import ErrorType

from tests.mail_harness import raw_mail

# POST /v1/mail/inbound takes raw e-mail (message/rfc822): messages and arbitrary bytes.
schemathesis.openapi.media_type("message/rfc822", raw_mail())

# Errors of the request validation layer: the schema states every one of these rules.
SCHEMA_KINDS = frozenset(get_args(ErrorType)) | {
    "instant",
    "date",
    "out_of_range",
    "null_forbidden",
    "unknown_query",
}


@schemathesis.check
def valid_data_passes_validation(ctx: Any, response: Any, case: Any) -> None:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    status = response.status_code
    if status in (400, 415):
        raise AssertionError(
            f"A request valid by the schema was refused with {status}: {response.text[:500]}"
        )
    if status != 422:
        return None
    try:
        errors = response.json().get("errors") or []
    except ValueError:
        raise AssertionError(f"422 without a problem body: {response.text[:300]}") from None
    kinds = sorted({str(e.get("type")) for e in errors} & SCHEMA_KINDS)
    if kinds:
        raise AssertionError(
            f"A request valid by the schema failed request validation ({', '.join(kinds)}): "
            f"{response.text[:500]}"
        )
    return None
