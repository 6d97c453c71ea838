"""The dispatcher against a real receiver on 127.0.0.1: signatures as a receiver verifies
them, fan-out, per-ticket order, retries, 3xx/410/Retry-After, isolation between
subscriptions, ping, redelivery and SSRF checks at send time."""

from __future__ import annotations

import asyncio
import logging
import ssl
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from app.observability import JsonFormatter
from app.services.netguard import AddressRefused, GuardedTransport
from app.workers.dispatcher import Dispatcher
from tests.webhook_harness import (
    Received,
    Receiver,
    Reply,
    all_settled,
    config,
    emit_events,
    eventually,
    execute,
    msg_id,
    rows,
    running,
    scalar,
)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


async def subscribe(
    admin: httpx.AsyncClient, url: str, event_types: list[str] | None = None, **fields: Any
) -> dict[str, Any]:
    body = {"url": url, "event_types": event_types or ["*"], **fields}
    response = await admin.post("/v1/webhooks", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def ticket_event(n: int, ticket: uuid.UUID | None, type_: str = "ticket.status_changed") -> Any:
    return (type_, ticket, {"n": n, "ticket": {"id": str(ticket) if ticket else None}})


async def test_delivery_is_signed_as_standard_webhooks(
    db: AsyncEngine, admin: httpx.AsyncClient, receiver: Receiver
) -> None:
    sub = await subscribe(admin, receiver.url(), ["ticket.created"])
    ticket = uuid.uuid4()
    async with running(Dispatcher(db, config())):
        [event_id] = await emit_events(db, [ticket_event(1, ticket, "ticket.created")])
        await eventually(lambda: all_settled(db, 1), what="delivered")

    [request] = receiver.requests
    assert request.method == "POST" and request.headers["content-type"] == "application/json"
    payload = Webhook(sub["secret"]).verify(request.body, request.headers)
    assert payload["type"] == "ticket.created"
    assert payload["data"] == {"n": 1, "ticket": {"id": str(ticket)}}
    assert datetime.fromisoformat(payload["timestamp"]).tzinfo is not None
    assert request.id == msg_id(event_id)
    assert request.headers["webhook-signature"].startswith("v1,")
    with pytest.raises(WebhookVerificationError):  # a different secret does not verify
        Webhook("whsec_" + "A" * 44).verify(request.body, request.headers)

    listed = (await admin.get("/v1/webhooks/deliveries")).json()["items"]
    [delivery] = listed
    assert delivery["status"] == "succeeded" and delivery["webhook_id"] == request.id
    assert delivery["ticket_id"] == str(ticket) and delivery["event_id"] == str(event_id)
    [attempt] = delivery["attempts"]
    assert attempt["number"] == 1 and attempt["status_code"] == 200
    assert attempt["outcome"] == "succeeded" and attempt["duration_ms"] >= 0
    assert attempt["trigger"] == "schedule" and attempt["response_excerpt"] == "ok"


async def test_rotation_signs_with_both_secrets_until_the_overlap_ends(
    db: AsyncEngine, admin: httpx.AsyncClient, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sub = await subscribe(admin, receiver.url())
    rotated = (await admin.post(f"/v1/webhooks/{sub['id']}/rotate-secret")).json()
    old, new = sub["secret"], rotated["secret"]
    assert old != new
    async with running(Dispatcher(db, config())):
        await emit_events(db, [ticket_event(1, None)])
        await eventually(lambda: all_settled(db, 1), what="delivered")
        first = receiver.requests[0]
        assert len(first.headers["webhook-signature"].split(" ")) == 2
        # A receiver still on the old secret and one already on the new both verify it.
        assert Webhook(old).verify(first.body, first.headers)["data"]["n"] == 1
        assert Webhook(new).verify(first.body, first.headers)["data"]["n"] == 1

        await execute(
            db,
            "UPDATE webhook_subscriptions SET previous_secret_expires_at = now() - interval "
            "'1 second'",
        )
        await emit_events(db, [ticket_event(2, None)])
        await eventually(lambda: all_settled(db, 2), what="second delivered")
    second = receiver.requests[1]
    assert len(second.headers["webhook-signature"].split(" ")) == 1
    assert Webhook(new).verify(second.body, second.headers)["data"]["n"] == 2
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(second.body, second.headers)
    formatter = JsonFormatter()
    logged = "\n".join(formatter.format(r) for r in caplog.records)
    assert "webhook attempt succeeded" in logged
    assert old not in logged and new not in logged and "whsec_" not in logged


async def test_fan_out_follows_event_types_and_active(
    db: AsyncEngine, admin: httpx.AsyncClient, receiver: Receiver
) -> None:
    await subscribe(admin, receiver.url("/created"), ["ticket.created"])
    await subscribe(admin, receiver.url("/all"), ["*"])
    await subscribe(admin, receiver.url("/off"), ["*"], active=False)
    await subscribe(admin, receiver.url("/sla"), ["sla.warning", "sla.breached"])
    async with running(Dispatcher(db, config())):
        ids = await emit_events(
            db,
            [
                ticket_event(1, None, "ticket.created"),
                ticket_event(2, None, "sla.warning"),
                ticket_event(3, None, "ticket.closed"),
            ],
        )
        await eventually(lambda: all_settled(db, 5), what="five deliveries")
        await asyncio.sleep(0.05)
    by_path = {p: sorted(r.id for r in receiver.on(p)) for p in ("/created", "/all", "/sla")}
    assert by_path == {
        "/created": [msg_id(ids[0])],
        "/all": sorted(msg_id(i) for i in ids),
        "/sla": [msg_id(ids[1])],
    }
    assert receiver.on("/off") == []
    undispatched = "SELECT count(*) FROM outbox_events WHERE dispatched_at IS NULL"
    assert await scalar(db, undispatched) == 0


async def test_per_ticket_order_holds_while_the_first_event_fails(
    db: AsyncEngine, admin: httpx.AsyncClient, receiver: Receiver
) -> None:
    """The first event of ticket X fails until the other ticket's event and the ticketless
    one have arrived (so they did not wait behind it); X's later events wait for it."""
    await subscribe(admin, receiver.url())
    x, y = uuid.uuid4(), uuid.uuid4()
    others_arrived = asyncio.Event()

    def handler(request: Received) -> Reply:
        n = request.json["data"]["n"]
        if n in (4, 5) and {4, 5} <= {r.json["data"]["n"] for r in receiver.requests}:
            others_arrived.set()
        if n == 1 and not others_arrived.is_set():
            return Reply(500)
        return Reply(200)

    receiver.handler = handler
    async with running(Dispatcher(db, config())):
        await emit_events(
            db,
            [
                ticket_event(1, x),
                ticket_event(2, x),
                ticket_event(3, x),
                ticket_event(4, y),
                ticket_event(5, None),
            ],
        )
        await eventually(lambda: all_settled(db, 5), what="all delivered")

    arrivals = [r.json["data"]["n"] for r in receiver.requests]
    of_x = [n for n in arrivals if n in (1, 2, 3)]
    assert of_x[-3:] == [1, 2, 3] and set(of_x[:-3]) <= {1}, arrivals
    assert of_x.count(1) >= 2  # it failed at least once before succeeding
    first_success_of_1 = len(arrivals) - 1 - arrivals[::-1].index(1)
    assert arrivals.index(4) < first_success_of_1 and arrivals.index(5) < first_success_of_1
    failures = await rows(
        db,
        "SELECT a.status_code, a.outcome FROM webhook_attempts a JOIN webhook_deliveries d "
        "ON d.id = a.delivery_id JOIN outbox_events e ON e.id = d.event_id "
        "WHERE (e.data->>'n')::int = 1 ORDER BY a.number",
    )
    assert failures[0] == (500, "failed") and failures[-1] == (200, "succeeded")


async def test_a_redirect_fails_the_delivery_at_once(
    db: AsyncEngine, admin: httpx.AsyncClient, receiver: Receiver
) -> None:
    """A 3xx is never followed, and asking again would get the same answer: the delivery
    fails after that one attempt (not retried for 32 hours), saying why; a redelivery
    (after the URL is fixed) still works."""
    await subscribe(admin, receiver.url())
    answers = iter([Reply(302, {"location": receiver.url("/elsewhere")}), Reply(200)])
    receiver.handler = lambda request: next(answers)
    async with running(Dispatcher(db, config())):
        await emit_events(db, [ticket_event(1, None)])
        await eventually(lambda: all_settled(db, 1), what="failed")
        [delivery] = (await admin.get("/v1/webhooks/deliveries")).json()["items"]
        assert delivery["status"] == "failed" and delivery["next_attempt_at"] is None
        [first] = delivery["attempts"]
        assert first["status_code"] == 302 and first["outcome"] == "failed"
        assert "redirects are not followed" in first["error"]
        assert receiver.url("/elsewhere") in first["error"]
        assert "not retried" in delivery["last_error"]
        assert [r.path for r in receiver.requests] == ["/hook"]  # never /elsewhere
        again = await admin.post(f"/v1/webhooks/deliveries/{delivery['id']}/redeliver")
        assert again.status_code == 202, again.text
        await eventually(lambda: all_settled(db, 1), what="redelivered")
    [delivery] = (await admin.get("/v1/webhooks/deliveries")).json()["items"]
    assert delivery["status"] == "succeeded"
    assert [r.path for r in receiver.requests] == ["/hook", "/hook"]


async def test_410_gone_disables_the_subscription(
    db: AsyncEngine, admin: httpx.AsyncClient, receiver: Receiver
) -> None:
    gone = await subscribe(admin, receiver.url("/gone"))
    await subscribe(admin, receiver.url("/fine"))
    receiver.handler = lambda r: Reply(410 if r.path == "/gone" else 200)
    async with running(Dispatcher(db, config())):
        await emit_events(db, [ticket_event(1, None)])
        await eventually(lambda: all_settled(db, 2), what="both settled")
        sub = (await admin.get(f"/v1/webhooks/{gone['id']}")).json()
        assert sub["active"] is False and "410" in sub["disabled_reason"]
        # Later events are not fanned out to it.
        await emit_events(db, [ticket_event(2, None)])
        await eventually(lambda: all_settled(db, 3), what="second event to /fine only")
    assert len(receiver.on("/gone")) == 1 and len(receiver.on("/fine")) == 2
    [failed] = (
        await admin.get("/v1/webhooks/deliveries", params={"subscription_id": gone["id"]})
    ).json()["items"]
    assert failed["status"] == "failed" and failed["attempt_count"] == 1
    enabled = (await admin.patch(f"/v1/webhooks/{gone['id']}", json={"active": True})).json()
    assert enabled["active"] is True and enabled["disabled_reason"] is None


@pytest.mark.parametrize("form", ["seconds", "http-date"])
async def test_retry_after_is_honoured(
    db: AsyncEngine, admin: httpx.AsyncClient, receiver: Receiver, form: str
) -> None:
    await subscribe(admin, receiver.url())

    def handler(request: Received) -> Reply:
        if len(receiver.requests) > 1:
            return Reply(200)
        later = datetime.now(UTC) + timedelta(seconds=2)
        value = "1" if form == "seconds" else format_datetime(later, usegmt=True)
        return Reply(503 if form == "seconds" else 429, {"retry-after": value})

    receiver.handler = handler
    async with running(Dispatcher(db, config())):
        await emit_events(db, [ticket_event(1, None)])
        await eventually(
            lambda: scalar(db, "SELECT attempt_count FROM webhook_deliveries"), what="attempt"
        )
        [(started, next_at)] = await rows(
            db,
            "SELECT a.started_at, d.next_attempt_at FROM webhook_deliveries d "
            "JOIN webhook_attempts a ON a.delivery_id = d.id",
        )
        # The schedule says 20 ms; the receiver asked for (at least) a second.
        assert next_at - started >= timedelta(seconds=1)
        await eventually(lambda: all_settled(db, 1), what="delivered after Retry-After")
    assert len(receiver.requests) == 2


async def test_a_hanging_receiver_does_not_hold_up_other_subscriptions(
    db: AsyncEngine, admin: httpx.AsyncClient, receiver: Receiver
) -> None:
    slow = await subscribe(admin, receiver.url("/slow"))
    fast = await subscribe(admin, receiver.url("/fast"))
    release = asyncio.Event()

    async def handler(request: Received) -> Reply:
        if request.path == "/slow":
            await release.wait()
        return Reply(200)

    receiver.handler = handler
    dispatcher = Dispatcher(db, config(per_subscription=2, max_in_flight=4, timeout=30.0))
    async with running(dispatcher):
        await emit_events(db, [ticket_event(n, None) for n in range(10)])

        async def fast_done() -> bool:
            done = await scalar(
                db,
                "SELECT count(*) FROM webhook_deliveries WHERE subscription_id = :s "
                "AND status = 'succeeded'",
                s=fast["id"],
            )
            return int(done) == 10

        await eventually(fast_done, what="all fast deliveries")
        slow_done = await scalar(
            db,
            "SELECT count(*) FROM webhook_deliveries WHERE subscription_id = :s "
            "AND status <> 'pending'",
            s=slow["id"],
        )
        assert slow_done == 0  # every slow one is still hanging or waiting its turn
        assert receiver.in_flight["/slow"] == 2  # its share of the slots, no more
        release.set()
        await eventually(lambda: all_settled(db, 20), what="slow ones after release")
    assert receiver.max_in_flight["/slow"] == 2


async def test_ping_goes_through_the_pipeline_to_that_subscription_only(
    db: AsyncEngine, admin: httpx.AsyncClient, receiver: Receiver
) -> None:
    target = await subscribe(admin, receiver.url("/target"), ["ticket.created"])
    await subscribe(admin, receiver.url("/other"), ["*"])
    response = await admin.post(f"/v1/webhooks/{target['id']}/ping")
    assert response.status_code == 202
    delivery = response.json()
    assert delivery["event_type"] == "webhook.ping" and delivery["status"] == "pending"
    async with running(Dispatcher(db, config())):
        await eventually(lambda: all_settled(db, 1), what="ping delivered")
        await asyncio.sleep(0.05)  # let fan-out pass the ping event too
        await eventually(
            lambda: scalar(db, "SELECT bool_and(dispatched_at IS NOT NULL) FROM outbox_events"),
            what="ping event fanned out",
        )
    [request] = receiver.requests
    assert request.path == "/target" and request.id == delivery["webhook_id"]
    payload = Webhook(target["secret"]).verify(request.body, request.headers)
    assert payload["type"] == "webhook.ping" and payload["data"]["subscription_id"] == target["id"]
    assert await scalar(db, "SELECT count(*) FROM webhook_deliveries") == 1


async def test_redeliver_sends_the_same_webhook_id_again(
    db: AsyncEngine, admin: httpx.AsyncClient, receiver: Receiver
) -> None:
    await subscribe(admin, receiver.url())
    async with running(Dispatcher(db, config())):
        await emit_events(db, [ticket_event(1, uuid.uuid4())])
        await eventually(lambda: all_settled(db, 1), what="delivered")
        [delivery] = (await admin.get("/v1/webhooks/deliveries")).json()["items"]
        response = await admin.post(f"/v1/webhooks/deliveries/{delivery['id']}/redeliver")
        assert response.status_code == 202 and response.json()["status"] == "pending"
        await eventually(lambda: len(receiver.requests) == 2, what="redelivered")
        await eventually(lambda: all_settled(db, 1), what="settled again")
    first, second = receiver.requests
    assert first.id == second.id == delivery["webhook_id"] and first.body == second.body
    again = (await admin.get(f"/v1/webhooks/deliveries/{delivery['id']}")).json()
    assert [a["trigger"] for a in again["attempts"]] == ["schedule", "redeliver"]
    assert [a["number"] for a in again["attempts"]] == [1, 2]
    assert again["status"] == "succeeded" and again["attempt_count"] == 2


async def test_exhausted_schedule_fails_the_delivery(
    db: AsyncEngine, admin: httpx.AsyncClient, receiver: Receiver
) -> None:
    await subscribe(admin, receiver.url())
    receiver.handler = lambda r: Reply(500, body=b"boom")
    schedule = tuple(timedelta(milliseconds=ms) for ms in (0, 10, 10, 10))
    async with running(Dispatcher(db, config(schedule=schedule))):
        await emit_events(db, [ticket_event(1, None)])
        await eventually(lambda: all_settled(db, 1), what="failed for good")
    [delivery] = (await admin.get("/v1/webhooks/deliveries")).json()["items"]
    assert delivery["status"] == "failed" and delivery["attempt_count"] == 4
    assert "retries exhausted" in delivery["last_error"] and delivery["next_attempt_at"] is None
    assert [a["response_excerpt"] for a in delivery["attempts"]] == ["boom"] * 4
    assert len(receiver.requests) == 4 and len({r.id for r in receiver.requests}) == 1


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_private_destinations_are_refused_at_send_time(
    db: AsyncEngine, admin: httpx.AsyncClient, receiver: Receiver, host: str
) -> None:
    """Saved while allowed (or DNS changed since): refused when connecting, as a failed
    attempt with a clear error, and nothing reaches the receiver."""
    await subscribe(admin, f"http://{host}:{receiver.port}/hook")
    schedule = tuple(timedelta(milliseconds=ms) for ms in (0, 10))
    async with running(Dispatcher(db, config(allow_private=False, schedule=schedule))):
        await emit_events(db, [ticket_event(1, None)])
        await eventually(lambda: all_settled(db, 1), what="refused for good")
    assert receiver.requests == []
    [delivery] = (await admin.get("/v1/webhooks/deliveries")).json()["items"]
    assert delivery["status"] == "failed"
    for attempt in delivery["attempts"]:
        assert attempt["status_code"] is None
        assert "address refused (SSRF protection)" in attempt["error"]
        assert "loopback" in attempt["error"]


async def test_plain_http_is_refused_at_send_time_when_disallowed(
    db: AsyncEngine, admin: httpx.AsyncClient, receiver: Receiver
) -> None:
    await subscribe(admin, receiver.url())
    schedule = (timedelta(0),)
    async with running(Dispatcher(db, config(allow_http=False, schedule=schedule))):
        await emit_events(db, [ticket_event(1, None)])
        await eventually(lambda: all_settled(db, 1), what="refused")
    assert receiver.requests == []
    error = await scalar(db, "SELECT error FROM webhook_attempts")
    assert error.startswith("URL refused: must use https")


async def test_the_registered_worker_loop_delivers(
    db: AsyncEngine, settings: Any, admin: httpx.AsyncClient, receiver: Receiver
) -> None:
    """`sladesk serve` / `sladesk worker` run the loops of app.workers.runner."""
    from app.workers.runner import LOOPS, running_workers

    assert [name for name, _ in LOOPS] == [
        "timers", "webhooks", "retention", "mail", "mail-listener"
    ]  # fmt: skip
    sub = await subscribe(admin, receiver.url())
    async with running_workers(db, settings):
        await emit_events(db, [ticket_event(1, None)])
        await eventually(lambda: all_settled(db, 1), what="delivered by the worker loop")
    [request] = receiver.requests
    assert Webhook(sub["secret"]).verify(request.body, request.headers)["data"]["n"] == 1


async def test_https_connects_to_the_checked_address_and_verifies_the_host_name(
    localhost_cert: tuple[Path, Path],
) -> None:
    """The guarded pool resolves `localhost` itself and connects to the address it
    checked, while TLS still verifies the certificate against the host name."""
    cert, key = localhost_cert
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readline())
        writer.write(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    trusting = ssl.create_default_context(cafile=str(cert))
    try:
        transport = GuardedTransport(allow_private=True, max_connections=2, ssl_context=trusting)
        async with httpx.AsyncClient(transport=transport) as client:
            ok = await client.post(f"https://localhost:{port}/hook", content=b"{}")
            assert ok.status_code == 204 and seen == [b"POST /hook HTTP/1.1\r\n"]
            with pytest.raises(httpx.ConnectError, match="IP address mismatch"):
                await client.post(f"https://127.0.0.1:{port}/hook", content=b"{}")
        default = GuardedTransport(allow_private=True, max_connections=2)
        async with httpx.AsyncClient(transport=default) as client:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await client.post(f"https://localhost:{port}/hook", content=b"{}")
        strict = GuardedTransport(allow_private=False, max_connections=2, ssl_context=trusting)
        async with httpx.AsyncClient(transport=strict) as client:
            with pytest.raises(AddressRefused, match="localhost resolves to a forbidden"):
                await client.post(f"https://localhost:{port}/hook", content=b"{}")
        assert len(seen) == 1
    finally:
        server.close()
        await server.wait_closed()
