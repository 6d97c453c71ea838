"""The README's "First hour", run as a new user would: its own command blocks, in order,
from a fresh directory holding the checkout's examples and this environment's `.venv`.

The only change to what the README prints: the server listens on an ephemeral port
instead of 8000 (SLADESK_PORT, and that port in the URLs), so runs never collide.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import sys
from pathlib import Path

from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
INSTALL = "python3.11 -m venv .venv && .venv/bin/pip install -e ."


def walkthrough() -> list[str]:
    """The ```sh blocks of the README's "First hour" section, in order."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## First hour\n", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", section, re.S)]


def test_the_walkthrough_installs_the_command_it_then_uses() -> None:
    install, serve, *rest = walkthrough()
    assert install == INSTALL
    # What `pip install -e .` made in this environment: the `sladesk` command.
    assert (Path(sys.prefix) / "bin" / "sladesk").exists()
    for command in [serve, *rest]:
        assert "sladesk " not in command.replace(".venv/bin/sladesk ", ""), command


async def test_the_readme_walkthrough_runs_top_to_bottom(tmp_path: Path) -> None:
    _, serve_block, *blocks = walkthrough()
    home = tmp_path / "clone"
    home.mkdir()
    shutil.copytree(ROOT / "examples", home / "examples")
    (home / ".venv").symlink_to(Path(sys.prefix))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLADESK_")}
    env["SLADESK_PORT"] = str(port)
    script = "\n".join(blocks).replace("127.0.0.1:8000", f"127.0.0.1:{port}")

    serve = await asyncio.create_subprocess_exec(
        "bash", "-c", f"exec {serve_block}", cwd=home, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert serve.stdout is not None
    try:
        printed: list[str] = []
        async with asyncio.timeout(120):
            while not printed or "API docs at" not in printed[-1]:
                line = await serve.stdout.readline()
                assert line, f"serve exited: {printed}"
                printed.append(line.decode().rstrip())
        assert any("admin API key" in line for line in printed)

        walk = await asyncio.create_subprocess_exec(
            "bash", "-euo", "pipefail", "-c", script, cwd=home, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        async with asyncio.timeout(300):
            out, err = await walk.communicate()
        assert walk.returncode == 0, f"{out.decode()}\n{err.decode()}"
    finally:
        if serve.returncode is None:
            serve.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            await serve.communicate()
    assert serve.returncode == 0

    output = out.decode()
    # `load` printed ids and a customer key per organization it created.
    assert re.search(r"organization 'Specialized support demo client' \(id [0-9a-f-]{36}\)", output)
    assert output.count("its customer API key (shown only this once): sld_") == 9
    # The ticket as the README describes it.
    ticket = json.loads(output.strip().splitlines()[-1])
    loaded = json.loads((home / "loaded.json").read_text())
    assert ticket["status"] == "in_progress"
    assert ticket["assignee_id"] == loaded["ids"]["agent"]["sofia@support.example.mx"]
    clocks = {c["metric"]: c for c in ticket["sla"]}
    assert clocks["first_response"]["state"] == "met"
    assert clocks["resolution"]["state"] in ("running", "paused") and clocks["resolution"]["due_at"]
