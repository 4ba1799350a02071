"""The review console in headless Chromium (Debian's package, driven by Playwright): the queue renders, values are
escaped, the SHAP chart draws, and a verdict round-trips into the verdicts table and the labels topic."""

from __future__ import annotations

import io
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from api.app import create_app
from api.labels import LabelPublisher
from conf.settings import Settings
from features.table import features_table
from serving.sync import resync
from tests.integration.test_api import (
    ANALYST,
    HEAVY,
    HEAVY_TX,
    SERVICE,
    T0,
    _decision,
    register_champion,
    score_row,
    seeded_store,
    wait_for,
    write_scores,
)
from tests.support import free_ports

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium")
EVIL = '<img src=x onerror="window.__xss=1">'


@pytest.fixture(scope="module")
def console_url(tmp_path_factory: pytest.TempPathFactory, spark: Any, postgres: Any, kafka_broker: Any,
                settings: Settings) -> Iterator[tuple[str, Settings]]:
    import uvicorn

    home: Path = tmp_path_factory.mktemp("aegis-console")
    uri = f"sqlite:///{home / 'mlflow.db'}"
    register_champion(uri, home / "artifacts")
    seeded = seeded_store(spark, settings, home, "console_test", uri)
    evil = score_row("tx-evil", "c-evil", 200, "review", 0.5)
    evil["model_version"] = EVIL
    evil["top_reasons"] = [{"feature": "<b>bold</b>", "value": 1.0, "contribution": 0.3}]
    write_scores(seeded.lakehouse_root, [evil])
    resync(spark, seeded, T0.date(), T0.date(), features=features_table())
    labels = LabelPublisher(settings.kafka.bootstrap_servers, settings.kafka.topics.labels)
    (port,) = free_ports(1)
    server = uvicorn.Server(uvicorn.Config(create_app(seeded, labels=labels), host="127.0.0.1", port=port,
                                           lifespan="on", log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 30.0)
    yield f"http://127.0.0.1:{port}", seeded
    server.should_exit = True
    thread.join(15)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (deploy/install-chromium.sh installs it as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox", "--disable-gpu"])
        yield chromium
        chromium.close()


def colours(png: bytes) -> dict[tuple[int, int, int], int]:
    """Pixel count per RGB colour of a screenshot."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    return {rgb: n for n, rgb in image.getcolors(maxcolors=1 << 20) or []}


def near(counts: dict[tuple[int, int, int], int], rgb: tuple[int, int, int], tolerance: int = 12) -> int:
    return sum(n for c, n in counts.items() if all(abs(a - b) <= tolerance for a, b in zip(c, rgb, strict=True)))


def sign_in(page: Any, url: str, key: str) -> None:
    page.goto(f"{url}/console")
    page.fill("#api-key", key)
    page.click("#login-form button[type=submit]")


def test_queue_renders_escaped_and_a_verdict_round_trips(browser: Any, console_url: tuple[str, Settings],
                                                        settings: Settings, tmp_path: Path) -> None:
    from kafka import KafkaConsumer, TopicPartition

    url, seeded = console_url
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, url, ANALYST)

    flagged = [tx for i, tx in enumerate(HEAVY_TX) if _decision(i) != "allow"][::-1]
    rows = page.locator("#queue-table tbody tr")
    rows.first.wait_for(timeout=15_000)
    assert rows.count() == len(flagged) + 1  # + tx-evil
    ids = [rows.nth(i).get_attribute("data-transaction-id") for i in range(rows.count())]
    assert ids == ["tx-evil", *flagged]  # newest first
    assert page.locator("#who").inner_text() == "local-analyst (analyst)"
    queue_png = page.screenshot(path=str(tmp_path / "queue.png"), full_page=True)
    counts = colours(queue_png)
    assert near(counts, (0xB3, 0x26, 0x1E)) > 200  # block decisions in red text
    assert near(counts, (0xA1, 0x5C, 0x00)) > 200  # review decisions in amber text

    # an HTML-looking value is shown as text, never run or parsed
    page.click("tr[data-transaction-id='tx-evil']")
    page.locator("#d-fields dd", has_text="<img").wait_for(timeout=10_000)
    assert page.evaluate("window.__xss") is None
    assert page.locator("#d-fields img, #d-fields b").count() == 0
    assert page.locator("#d-fields dd", has_text="<b>bold</b> 0.300").count() == 1

    # a transaction: fields, the SHAP bar chart (one positive bar in red, one negative in green), history
    page.click("tr[data-transaction-id='tx-h03']")
    page.wait_for_function("document.getElementById('d-id').textContent === 'tx-h03'")
    page.locator("#history-table tbody tr").nth(19).wait_for(timeout=10_000)
    assert page.locator("#history-table tbody tr").count() == 20  # the customer's latest 20
    assert page.locator("#history-table tbody tr").first.get_attribute("data-transaction-id") == "tx-h24"
    page.wait_for_function("document.querySelector('#d-fields').textContent.includes('aegis-fraud v1')")
    chart_png = page.locator("#shap-chart").screenshot(path=str(tmp_path / "shap.png"))
    chart = colours(chart_png)
    assert near(chart, (0xD9, 0x30, 0x25)) > 500 and near(chart, (0x18, 0x80, 0x38)) > 200
    assert near(chart, (0xD9, 0x30, 0x25)) > near(chart, (0x18, 0x80, 0x38))  # 0.2 is twice as long as -0.1

    # a verdict from the form: in the verdicts table and on the labels topic, as a contract-valid label event
    topic = settings.kafka.topics.labels
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka.bootstrap_servers, consumer_timeout_ms=10_000)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
    consumer.assign(partitions)
    ends = consumer.end_offsets(partitions)
    for tp in partitions:
        consumer.seek(tp, ends[tp])
    page.fill("#v-note", "card holder confirmed <script>")
    page.click("#verdict-form button.fraud")
    page.locator("#verdict-status", has_text="recorded").wait_for(timeout=20_000)
    page.screenshot(path=str(tmp_path / "verdict.png"), full_page=True)
    with psycopg.connect(seeded.serving_dsn) as conn:
        recorded = conn.execute("SELECT transaction_id, customer_id, is_fraud, analyst, note, published_at IS NOT NULL "
                                "FROM verdicts").fetchall()
    assert recorded == [("tx-h03", HEAVY, True, "local-analyst", "card holder confirmed <script>", True)]
    events = [json.loads(m.value) for m in consumer if m.value]
    consumer.close()
    mine = [e for e in events if e["transaction_id"] == "tx-h03"]
    assert len(mine) == 1 and mine[0]["is_fraud"] is True and mine[0]["customer_id"] == HEAVY
    from sources.contract import validate_event

    assert validate_event(mine[0], "label") == []

    # bad input through the form: a 422 naming the field, shown to the analyst; nothing recorded
    page.evaluate("document.getElementById('v-transaction').value = 'bad id!'")
    page.click("#verdict-form button.legit")
    page.locator("#verdict-status", has_text="Not recorded").wait_for(timeout=10_000)
    assert "transaction_id" in page.locator("#verdict-status").inner_text()
    assert errors == []
    page.close()


def test_service_key_may_not_use_the_console(browser: Any, console_url: tuple[str, Settings]) -> None:
    page = browser.new_page()
    sign_in(page, console_url[0], SERVICE)
    page.locator("#login-error", has_text="may not use the console").wait_for(timeout=10_000)
    assert page.locator("#console-view").is_hidden()
    page.close()
