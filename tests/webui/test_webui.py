"""The web UI at `/ui/` on the admin port, in headless Chromium (the system's, driven by
Playwright): every page shows what a running perdure server holds, and every action taken in
the browser changes what the server holds, checked through `POST /query`.

One server and one service (`tests/webui/shop_service.py`) are shared by the module; each
action test makes its own invocation to act on. Screenshots land in
`test-artifacts/webui/<name>.png`.
"""

from __future__ import annotations

import http.client
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright

from tests.support import REPO_ROOT, PerdureServer, ServiceProcess, http_get, http_post, wait_until

pytestmark = pytest.mark.timeout(180)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "webui"
DECLINED = "card 4242 declined: insufficient funds"


# ------------------------------------------------------------------------------ fixtures


@dataclass
class Shop:
    """The server, its service, and the invocations made before the first test."""

    server: PerdureServer
    placed: str = ""       # Orders/place("book"): completed
    failing: str = ""      # Orders/charge("4242"): backing off with DECLINED
    napping: str = ""      # Orders/nap(): suspended in a day-long sleep
    checkout: str = ""     # Cart/bob/checkout(): suspended on an awakeable
    deployment: str = ""
    service_url: str = ""

    def query(self, sql: str) -> list[dict]:
        resp = http_post(self.server.admin_url + "/query", json={"query": sql},
                         headers={"accept": "application/json"})
        assert resp.status == 200, resp.text
        return resp.json()["rows"]

    def status(self, iid: str) -> str | None:
        rows = self.query(f"SELECT status FROM sys_invocation WHERE id = '{iid}'")
        return rows[0]["status"] if rows else None

    def wait_status(self, iid: str, *statuses: str) -> None:
        wait_until(lambda: self.status(iid) in statuses, 30, interval=0.05,
                   what=f"{iid} to be {' or '.join(statuses)} (is {self.status(iid)})")

    def send(self, service: str, handler: str, arg=None, key: str | None = None) -> str:
        resp = self.server.call(service, handler, arg, key=key, send=True)
        assert resp.status in (200, 202), resp.text
        return resp.json()["invocationId"]

    def backing_off(self, card: str) -> str:
        iid = self.send("Orders", "charge", card)
        wait_until(lambda: self.query(
            f"SELECT id FROM sys_invocation WHERE id = '{iid}' AND retry_count > 0 "
            "AND last_failure IS NOT NULL"), 30, interval=0.05, what=f"{iid} to fail and back off")
        return iid


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    base = tmp_path_factory.mktemp("webui")
    server = PerdureServer(base / "perdure", log_dir=base / "logs")
    service = ServiceProcess("tests.webui.shop_service:app", http2=False, log_dir=base / "logs")
    server.start()
    try:
        service.start()
        s = Shop(server, service_url=service.url)
        s.deployment = server.register(service.url, use_http_11=True)["id"]
        s.placed = s.send("Orders", "place", "book")
        s.failing = s.backing_off("4242")
        s.napping = s.send("Orders", "nap")
        s.checkout = s.send("Cart", "checkout", key="bob")
        for iid in (s.placed,):
            s.wait_status(iid, "completed")
        for iid in (s.napping, s.checkout):
            s.wait_status(iid, "suspended")
        yield s
    finally:
        service.stop()
        server.cleanup()


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    profile = tmp_path_factory.mktemp("chromium-profile")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1280, "height": 900})
        try:
            yield context
        finally:
            context.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser_context: BrowserContext, shop: Shop) -> Iterator[Page]:
    """A fresh tab; the test fails if the page threw, logged an error, or one of the UI's own
    files failed to load. (API answers of 4xx are part of some tests; the page shows them.)"""
    tab = browser_context.new_page()
    tab.set_default_timeout(15_000)
    problems: list[str] = []

    def console(message) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(f"console error: {message.text}")

    def response(resp) -> None:
        if "/ui/" in resp.url and resp.status >= 400:
            problems.append(f"{resp.url}: HTTP {resp.status}")

    tab.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    tab.on("console", console)
    tab.on("response", response)
    try:
        yield tab
    finally:
        tab.close()
    assert not problems, problems


def open_ui(page: Page, shop: Shop, route: str) -> None:
    page.goto(f"{shop.server.admin_url}/ui/#{route}")
    expect(page.locator(".page[data-loaded=true]")).to_be_visible()


def screenshot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def confirm(page: Page, action: str) -> None:
    page.locator(f"button[data-action={action}]").click()
    dialog = page.locator("dialog.confirm")
    expect(dialog).to_be_visible()
    dialog.locator("button.danger").click()
    expect(dialog).to_have_count(0)


# ------------------------------------------------------------------------------ serving


def test_the_ui_is_served_at_ui_on_the_admin_port(shop: Shop) -> None:
    conn = http.client.HTTPConnection(shop.server.host, shop.server.admin_port, timeout=10)
    try:
        conn.request("GET", "/ui")
        resp = conn.getresponse()
        resp.read()
        assert resp.status in (301, 308) and resp.getheader("Location") == "/ui/"
    finally:
        conn.close()
    index = http_get(shop.server.admin_url + "/ui/")
    assert index.status == 200 and index.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="app.js">' in index.text
    assert "script-src 'self'" in index.headers["content-security-policy"]
    script = http_get(shop.server.admin_url + "/ui/app.js")
    assert script.status == 200 and script.headers["content-type"].startswith("text/javascript")
    assert http_get(shop.server.admin_url + "/ui/partition.db").status == 404
    assert http_get(shop.server.admin_url + "/ui/..%2Fquery.py").status == 404


# ------------------------------------------------------------------------------ pages


def test_the_invocation_list_shows_each_invocation_with_its_status(page: Page, shop: Shop) -> None:
    open_ui(page, shop, "/invocations")
    rows = page.locator("#invocations tbody tr")
    expected = {shop.placed: "completed", shop.failing: "backing-off", shop.napping: "suspended",
                shop.checkout: "suspended"}
    for iid, status in expected.items():
        row = rows.filter(has=page.locator(f"a[href='#/invocation/{iid}']"))
        expect(row).to_have_count(1)
        expect(row.locator(".badge")).to_have_text(status)
    failing = rows.filter(has=page.locator(f"a[href='#/invocation/{shop.failing}']"))
    expect(failing).to_contain_text(DECLINED)
    expect(rows.filter(has=page.locator(f"a[href='#/invocation/{shop.placed}']"))).to_contain_text("Orders/place")
    expect(rows.filter(has=page.locator(f"a[href='#/invocation/{shop.checkout}']"))).to_contain_text("Cart/bob/checkout")
    screenshot(page, "invocations")


def test_the_invocation_list_filters_by_service_handler_key_and_status(page: Page, shop: Shop) -> None:
    open_ui(page, shop, "/invocations")
    page.select_option("#filter-status", "backing-off")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"status=backing-off"))
    links = page.locator("#invocations tbody tr td:first-child a")
    expect(links.filter(has_text=shop.failing)).to_have_count(1)
    for other in (shop.placed, shop.napping, shop.checkout):
        expect(links.filter(has_text=other)).to_have_count(0)
    screenshot(page, "invocations-filtered")

    open_ui(page, shop, "/invocations?service=Cart&handler=checkout&key=bob")
    expect(page.locator("#filter-service")).to_have_value("Cart")
    expect(links).to_have_text([shop.checkout])
    open_ui(page, shop, "/invocations?service=Cart&key=nobody")
    expect(page.locator("#invocation-count")).to_have_text("0 invocations")


def test_refresh_loads_the_list_again(page: Page, shop: Shop) -> None:
    open_ui(page, shop, "/invocations?service=Orders&handler=nap")
    before = page.locator("#invocations tbody tr").count()
    iid = shop.send("Orders", "nap")
    shop.wait_status(iid, "suspended")
    page.locator("#refresh").click()
    expect(page.locator("#invocations tbody tr")).to_have_count(before + 1)
    expect(page.locator(f"#invocations a[href='#/invocation/{iid}']")).to_have_count(1)


def entry(page: Page, index: int):
    return page.locator(f"#journal li[data-index='{index}']")


def test_a_completed_invocation_shows_its_journal_as_a_timeline(page: Page, shop: Shop) -> None:
    journal = shop.query(f"SELECT index, entry_type, name FROM sys_journal WHERE id = '{shop.placed}' ORDER BY index")
    open_ui(page, shop, f"/invocation/{shop.placed}")
    expect(page.locator("#invocation-id")).to_have_text(shop.placed)
    expect(page.locator(".header-row .badge").first).to_have_text("completed")
    expect(page.locator("dl.fields").first).to_contain_text("Orders/place")
    expect(page.locator("#journal li.entry")).to_have_count(len(journal))
    for row in journal:
        li = entry(page, row["index"])
        expect(li.locator(".entry-type")).to_have_text(row["entry_type"])
        if row.get("name"):
            expect(li.locator(".entry-name")).to_have_text(row["name"])
    run = page.locator("#journal li[data-type='Command: Run']")
    expect(run.locator(".entry-name")).to_have_text("price")
    expect(run).to_contain_text("result (entry")
    expect(run).to_contain_text("40")
    expect(run.locator(".entry-state .badge")).to_have_text("completed")
    call = page.locator("#journal li[data-type='Command: Call']")
    expect(call).to_contain_text("call Cart/alice/add")
    expect(call).to_contain_text('argument: "book"')
    callee = shop.query(f"SELECT invoked_id FROM sys_journal WHERE id = '{shop.placed}' "
                        "AND entry_type = 'Command: Call'")[0]["invoked_id"]
    expect(call.locator(f"a[href='#/invocation/{callee}']")).to_have_count(1)
    expect(page.locator("#journal li[data-type='Command: Input']")).to_contain_text('input: "book"')
    expect(page.locator("#journal li[data-type='Command: Output']")).to_contain_text("placed book for 40, 1 in cart")
    for action, enabled in (("cancel", False), ("kill", False), ("pause", False), ("resume", False), ("purge", True)):
        button = page.locator(f"button[data-action={action}]")
        if enabled:
            expect(button).to_be_enabled()
        else:
            expect(button).to_be_disabled()
    screenshot(page, "invocation-completed")

    # The callee's own page is one click away.
    call.locator(f"a[href='#/invocation/{callee}']").click()
    expect(page.locator("#invocation-id")).to_have_text(callee)
    expect(page.locator("#journal li[data-type='Command: SetState']").first).to_contain_text('set state "items"')
    expect(page.locator("dl.fields").first.locator(f"a[href='#/invocation/{shop.placed}']")).to_have_count(1)


def test_a_failing_invocation_shows_its_retries_and_their_error(page: Page, shop: Shop) -> None:
    open_ui(page, shop, f"/invocation/{shop.failing}")
    failure = page.locator("#last-failure")
    expect(failure).to_contain_text(DECLINED)
    expect(failure).to_contain_text('"charge card"')
    count = shop.query(f"SELECT retry_count FROM sys_invocation WHERE id = '{shop.failing}'")[0]["retry_count"]
    assert count >= 1
    expect(page.locator("#journal-retry")).to_contain_text(DECLINED)
    expect(page.locator("#journal-retry .entry-type")).to_have_text(re.compile(r"Retry \d+"))
    validate = page.locator("#journal li[data-type='Command: Run']").filter(has_text="validate")
    expect(validate.locator(".entry-state .badge")).to_have_text("completed")
    expect(validate).to_contain_text('"4242"')
    charging = page.locator("#journal li.retrying")
    expect(charging.locator(".entry-name")).to_have_text("charge card")
    expect(charging.locator(".entry-state .badge")).to_have_text("retrying")
    expect(charging).to_contain_text(DECLINED)
    screenshot(page, "invocation-backing-off")


def test_suspended_invocations_show_what_they_wait_for(page: Page, shop: Shop) -> None:
    open_ui(page, shop, f"/invocation/{shop.napping}")
    expect(page.locator(".header-row .badge").first).to_have_text("suspended")
    sleep = page.locator("#journal li[data-type='Command: Sleep']")
    expect(sleep.locator(".entry-name")).to_have_text("nap")
    expect(sleep.locator(".entry-state .badge")).to_have_text("sleeping")
    wake = shop.query(f"SELECT sleep_wakeup_at FROM sys_journal WHERE id = '{shop.napping}' "
                      "AND entry_type = 'Command: Sleep'")[0]["sleep_wakeup_at"]
    expect(sleep).to_contain_text(f"sleep until {wake}")
    expect(page.locator("button[data-action=cancel]")).to_be_enabled()
    expect(page.locator("button[data-action=purge]")).to_be_disabled()
    screenshot(page, "invocation-suspended")

    open_ui(page, shop, f"/invocation/{shop.checkout}")
    expect(page.locator(".header-row .badge").first).to_have_text("suspended")
    expect(page.locator("dl.fields").first).to_contain_text("Suspended, waiting for")
    expect(page.locator("#journal li[data-type='Command: SetState']")).to_contain_text('set state "awakeable"')


def test_the_state_page_shows_a_virtual_objects_entries(page: Page, shop: Shop) -> None:
    open_ui(page, shop, "/state?service=Cart")
    keys = page.locator("#state-key-list a")
    expect(keys.filter(has_text="alice")).to_have_count(1)
    expect(keys.filter(has_text="bob")).to_have_count(1)
    keys.filter(has_text="alice").click()
    expect(page).to_have_url(re.compile(r"key=alice"))
    rows = {r["key"]: r["value_utf8"] for r in shop.query(
        "SELECT key, value_utf8 FROM state WHERE service_name = 'Cart' AND service_key = 'alice'")}
    assert "items" in rows and "count" in rows
    for name, value in rows.items():
        expect(page.locator(f"#state-entries textarea[data-key='{name}']")).to_have_value(value)
    screenshot(page, "state")


def test_services_page_shows_handlers_types_and_settings(page: Page, shop: Shop) -> None:
    open_ui(page, shop, "/services")
    services = {s["name"]: s for s in shop.server.services()}
    for name in ("Orders", "Cart"):
        card = page.locator(f"section[data-service={name}]")
        expect(card.locator("h2 .badge.type")).to_have_text(services[name]["ty"])
        expect(card).to_contain_text(shop.deployment)
        expect(card).to_contain_text(services[name]["journal_retention"])
        expect(card).to_contain_text(services[name]["inactivity_timeout"])
        for handler in services[name]["handlers"]:
            row = card.locator(f"tr[data-handler={handler['name']}]")
            expect(row.locator("td").nth(1)).to_have_text(handler["ty"] or "—")
    for row in shop.query("SELECT status, count(*) AS n FROM sys_invocation "
                          "WHERE target_service_name = 'Orders' GROUP BY status"):
        expect(page.locator("section[data-service=Orders]")).to_contain_text(f"{row['n']} {row['status']}")
    screenshot(page, "services")


def test_deployments_page_shows_the_registered_deployment(page: Page, shop: Shop) -> None:
    open_ui(page, shop, "/deployments")
    card = page.locator(f"section[data-deployment={shop.deployment}]")
    expect(card.locator("h2")).to_have_text(shop.deployment)
    expect(card).to_contain_text(shop.service_url)
    expect(card).to_contain_text("RequestResponse")
    expect(card).to_contain_text("Orders (revision 1)")
    expect(card).to_contain_text("Cart (revision 1)")
    screenshot(page, "deployments")


def test_a_workflow_written_with_the_official_sdk_shows_its_promise_and_state(
        page: Page, shop: Shop, tmp_path: Path) -> None:
    service = ServiceProcess("tests.server.services.official_lifecycle:app", http2=False, log_dir=tmp_path)
    service.start()
    try:
        shop.server.register(service.url, use_http_11=True)
        run = shop.send("Signup", "run", "ada@example.com", key="ada")
        shop.wait_status(run, "suspended")
        assert shop.server.call("Signup", "click", "s3cret", key="ada").json() == "ok"
        shop.wait_status(run, "completed")
    finally:
        service.stop()
    open_ui(page, shop, f"/invocation/{run}")
    promise = page.locator("#journal li[data-type='Command: GetPromise']")
    expect(promise).to_contain_text('get promise "link"')
    expect(promise).to_contain_text('"s3cret"')
    expect(promise.locator(".entry-state .badge")).to_have_text("completed")
    expect(page.locator("#journal li[data-type='Command: Output']")).to_contain_text(
        "ada@example.com verified with s3cret")
    screenshot(page, "workflow-invocation")
    page.get_by_role("link", name="state of this key").click()
    expect(page.locator("#state-entries textarea[data-key=status]")).to_have_value('"verified"')
    screenshot(page, "workflow-state")


# ------------------------------------------------------------------------------ actions


def test_cancel_in_the_page_ends_a_suspended_invocation(page: Page, shop: Shop) -> None:
    iid = shop.send("Orders", "nap")
    shop.wait_status(iid, "suspended")
    open_ui(page, shop, f"/invocation/{iid}")
    confirm(page, "cancel")
    expect(page.locator(".notice")).to_have_text("Cancel: accepted (HTTP 202).")
    shop.wait_status(iid, "completed")
    row = shop.query(f"SELECT completion_result, completion_failure FROM sys_invocation WHERE id = '{iid}'")[0]
    assert row["completion_result"] == "failure" and "cancel" in row["completion_failure"].lower()
    page.reload()
    expect(page.locator(".header-row .badge").first).to_have_text("completed")
    expect(page.locator("#journal li[data-type='Notification: Signal']")).to_contain_text("cancel signal")
    expect(page.locator("#journal li[data-type='Command: Sleep'] .entry-state .badge")).to_have_text("never completed")
    expect(page.locator("#journal li[data-type='Command: Output']")).to_contain_text(
        f"output: failure {row['completion_failure']}")
    screenshot(page, "action-cancelled")


def test_kill_in_the_page_ends_an_invocation_at_once(page: Page, shop: Shop) -> None:
    iid = shop.send("Orders", "nap")
    shop.wait_status(iid, "suspended")
    open_ui(page, shop, f"/invocation/{iid}")
    confirm(page, "kill")
    expect(page.locator(".notice")).to_have_text("Kill: done (HTTP 200).")
    row = shop.query(f"SELECT status, completion_failure FROM sys_invocation WHERE id = '{iid}'")[0]
    assert row["status"] == "completed" and "killed" in row["completion_failure"]
    expect(page.locator(".header-row .badge").first).to_have_text("completed")
    expect(page.locator("dl.fields").first).to_contain_text("killed")


def test_going_back_from_the_confirmation_changes_nothing(page: Page, shop: Shop) -> None:
    open_ui(page, shop, f"/invocation/{shop.napping}")
    page.locator("button[data-action=kill]").click()
    page.locator("dialog.confirm").get_by_role("button", name="Back").click()
    expect(page.locator("dialog.confirm")).to_have_count(0)
    expect(page.locator(".notice")).to_have_count(0)
    assert shop.status(shop.napping) == "suspended"


def test_pause_then_resume_in_the_page(page: Page, shop: Shop) -> None:
    iid = shop.backing_off("5555")
    open_ui(page, shop, f"/invocation/{iid}")
    confirm(page, "pause")
    expect(page.locator(".notice")).to_have_text("Pause: accepted (HTTP 202).")
    assert shop.status(iid) == "paused"
    expect(page.locator(".header-row .badge").first).to_have_text("paused")
    screenshot(page, "action-paused")

    confirm(page, "resume")
    expect(page.locator(".notice")).to_have_text("Resume: done (HTTP 200).")
    assert shop.status(iid) != "paused"
    # It runs again, and fails again with the same error.
    wait_until(lambda: shop.query(f"SELECT id FROM sys_invocation WHERE id = '{iid}' AND status <> 'paused' "
                                  "AND last_failure LIKE '%5555 declined%'"), 30, interval=0.05,
               what="the resumed invocation to fail again")


def test_purge_in_the_page_deletes_a_completed_invocation(page: Page, shop: Shop) -> None:
    iid = shop.send("Orders", "place", "pen")
    shop.wait_status(iid, "completed")
    assert shop.query(f"SELECT index FROM sys_journal WHERE id = '{iid}'")
    open_ui(page, shop, f"/invocation/{iid}")
    confirm(page, "purge")
    expect(page.locator(".notice")).to_have_text("Purge: done (HTTP 200).")
    expect(page.locator("#not-found")).to_be_visible()
    assert shop.query(f"SELECT id FROM sys_invocation WHERE id = '{iid}'") == []
    assert shop.query(f"SELECT index FROM sys_journal WHERE id = '{iid}'") == []


def test_an_error_from_the_api_is_shown_in_the_page(page: Page, shop: Shop) -> None:
    iid = shop.send("Orders", "nap")
    shop.wait_status(iid, "suspended")
    open_ui(page, shop, f"/invocation/{iid}")
    # Someone else kills it while the page still offers Cancel.
    assert http_post_patch(shop, f"/invocations/{iid}/kill") == 200
    confirm(page, "cancel")
    error = page.locator(".notices .error")
    expect(error).to_contain_text(f"PATCH /invocations/{iid}/cancel → HTTP 409")
    expect(error).to_contain_text(f"The invocation '{iid}' was already completed.")
    screenshot(page, "action-error")

    open_ui(page, shop, "/invocations?status=x' OR '1'='1")
    expect(page.locator("#invocation-count")).to_have_text("0 invocations")


def http_post_patch(shop: Shop, path: str) -> int:
    conn = http.client.HTTPConnection(shop.server.host, shop.server.admin_port, timeout=10)
    try:
        conn.request("PATCH", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def test_editing_state_in_the_page_changes_the_servers_state(page: Page, shop: Shop) -> None:
    assert shop.server.call("Cart", "add", "apple", key="carol").json() == 1
    open_ui(page, shop, "/state?service=Cart&key=carol")
    expect(page.locator("#state-entries textarea[data-key=count]")).to_have_value("1")
    page.locator("#state-entries textarea[data-key=count]").fill("41")
    page.locator("button[data-delete=items]").click()
    expect(page.locator("tr[data-key=items]")).to_have_class(re.compile("deleted"))
    page.locator("#new-state-name").fill("note")
    page.locator("#new-state-value").fill('"gift wrap"')
    page.get_by_role("button", name="Add entry").click()
    expect(page.locator("#state-entries textarea[data-key=note]")).to_have_value('"gift wrap"')
    page.locator("#save-state").click()
    expect(page.locator(".notice")).to_have_text("Saved 2 entries for Cart/carol (HTTP 202).")
    rows = {r["key"]: r["value_utf8"] for r in shop.query(
        "SELECT key, value_utf8 FROM state WHERE service_name = 'Cart' AND service_key = 'carol'")}
    assert rows == {"count": "41", "note": '"gift wrap"'}
    # The handlers see it too.
    assert shop.server.call("Cart", "count", key="carol").json() == 41
    expect(page.locator("#state-entries > tbody > tr")).to_have_count(2)
    expect(page.locator("#state-entries tr[data-key=items]")).to_have_count(0)
    screenshot(page, "state-saved")


def test_server_text_is_shown_as_text_never_as_markup(page: Page, shop: Shop) -> None:
    key = "<img src=x id=injected>"
    assert shop.server.call("Cart", "add", "<b id=bold>x</b>", key=quote(key, safe="")).json() == 1
    open_ui(page, shop, "/invocations?service=Cart")
    expect(page.locator("#invocations")).to_contain_text(f"Cart/{key}/add")
    open_ui(page, shop, "/state?" + urlencode({"service": "Cart", "key": key}))
    expect(page.locator("#state-entries textarea[data-key=items]")).to_have_value('["<b id=bold>x</b>"]')
    expect(page.locator("#injected")).to_have_count(0)
    expect(page.locator("#bold")).to_have_count(0)
