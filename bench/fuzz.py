"""The long schema-fuzzing run: Schemathesis against a real server, once per key role.

    python bench/fuzz.py                      # 50 examples per operation, admin, agent, customer
    python bench/fuzz.py -n 200 --roles customer --workers 2
    python bench/fuzz.py --smoke              # 5 examples per operation (what CI runs)

A fresh migrated database (``SLADESK_DATABASE_URL`` names a server, else an embedded one),
seeded through the API (tests/fuzz_harness.py), served by uvicorn on 127.0.0.1; then
``st run`` with every phase (examples, coverage, fuzzing, stateful links) and every check,
with each role's key in turn. Prints each run's summary lines; exits non-zero when any run
reported a failure. The whole output and Schemathesis' NDJSON report go to ``--report-dir``
(default ``schemathesis-report/``), one sub-directory per role.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.config import Settings
from app.db import make_engine
from app.security import Role
from bench.common import fresh_database
from tests.conftest import make_key
from tests.fuzz_harness import ROLES, LiveServer, fuzz_settings, run_schemathesis, seed
from tests.fuzz_harness import summary_lines as summary


async def _admin_key(url: str) -> str:
    engine = make_engine(url, Settings(database_url=url), pooled=False)
    try:
        return await make_key(engine, Role.ADMIN)
    finally:
        await engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--max-examples", type=int, default=50)
    parser.add_argument("--roles", default=",".join(ROLES), help="comma-separated")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--report-dir", default="schemathesis-report")
    parser.add_argument("--smoke", action="store_true", help="5 examples per operation")
    args = parser.parse_args()
    examples = 5 if args.smoke else args.max_examples
    failed = False

    async def body() -> None:
        async with fresh_database("sladesk_fuzz") as url:
            admin_key = await _admin_key(url)
            await asyncio.to_thread(_serve_and_fuzz, url, admin_key)

    def _serve_and_fuzz(url: str, admin_key: str) -> None:
        nonlocal failed
        with LiveServer(fuzz_settings(url)) as server:
            keys = seed(server.url, admin_key).keys
            for role in args.roles.split(","):
                started = time.monotonic()
                result = run_schemathesis(
                    server.url,
                    keys[role],
                    max_examples=examples,
                    seed_value=args.seed,
                    workers=args.workers,
                    extra=(
                        "--report",
                        "ndjson",
                        "--report-dir",
                        str((Path(args.report_dir) / role).resolve()),
                    ),
                )
                took = time.monotonic() - started
                out_dir = Path(args.report_dir) / role
                out_dir.mkdir(parents=True, exist_ok=True)
                (out_dir / "output.txt").write_text(result.stdout + result.stderr)
                print(f"== {role}: exit {result.returncode}, {took:.0f} s, -n {examples}")
                print("\n".join(summary(result.stdout)))
                if result.returncode != 0:
                    failed = True
                    print(f"   full output: {out_dir / 'output.txt'}")

    asyncio.run(body())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
