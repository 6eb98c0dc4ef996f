"""The open-loop latency generator of the benchmark (bench/api_latency.py), against a real HTTP server."""

from __future__ import annotations

import asyncio

from aiohttp import web

from bench.api_latency import hold_rate, percentile


def test_percentile_is_nearest_rank() -> None:
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([7.0], 0.99) == 7.0


async def test_every_request_is_sent_counted_by_status_and_slow_answers_reach_the_p99() -> None:
    calls = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if request.match_info["key"] == "missing":
            return web.Response(status=404)
        if calls % 10 == 0:
            await asyncio.sleep(0.08)  # one answer in ten is slow
        return web.Response(text="{}")

    app = web.Application()
    app.router.add_get("/v1/campaigns/{key}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        result = await hold_rate(
            f"http://127.0.0.1:{port}", ["/v1/campaigns/a", "/v1/campaigns/b", "/v1/campaigns/missing"], 150, 1.0
        )
    finally:
        await runner.cleanup()
    assert calls == 150
    assert result["requests"] == 150
    assert result["statuses"] == {"200": 100, "404": 50}
    # 10 % of the answers took 80 ms: the 99th percentile is one of them (latency is never under-counted).
    assert result["p99_ms"] >= 80
    assert result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
