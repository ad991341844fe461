"""The smoke run's report.html in a real browser (headless Chromium via Playwright).

Loads the self-contained page from disk with no network, checks that every section of
the report is there and that every plot decodes to a real image, and saves a full-page
screenshot in the run folder (report/screenshot.png) for a human to look at.
"""

import os
import shutil

import pytest

pytestmark = pytest.mark.slow

SECTIONS = [
    "Headline",
    "How this compares to the paper",
    "Per-eval results",
    "Refusal rates",
    "Transfer",
    "Training (compute per arm)",
    "Seeds",
    "Organism",
    "Persistence: persona prompts",
    "Persistence: harmful fine-tuning",
    "Inside the model: trait directions",
    "Stage times (s)",
]
PLOTS = ["forest", "training", "fine-tuning", "directions"]  # alt texts of the report's figures


def chromium_path() -> str:
    path = os.environ.get("BENRL_CHROMIUM") or shutil.which("chromium")
    if path:
        return path
    if os.environ.get("CI"):  # CI installs it (.ci/run): missing there is a failure
        pytest.fail("Chromium not found: .ci/run should have installed Debian's chromium")
    pytest.skip("Chromium not installed (apt-get install chromium), or set BENRL_CHROMIUM")


@pytest.fixture(scope="module")
def page(smoke_run):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium_path(),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page()
        requests = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto((smoke_run / "report" / "report.html").as_uri(), wait_until="load")
        page.screenshot(path=str(smoke_run / "report" / "screenshot.png"), full_page=True)
        yield page, requests
        browser.close()


def test_every_section_is_on_the_page(page):
    page, _ = page
    headings = [h.strip() for h in page.locator("h2").all_inner_texts()]
    assert [s for s in SECTIONS if s not in headings] == []
    assert "beneficial vs baseline: ahead on" in page.locator("body").inner_text()


def test_every_plot_decodes_and_nothing_is_fetched(page, smoke_run):
    page, requests = page
    images = page.locator("img")
    alts = [images.nth(i).get_attribute("alt") or "" for i in range(images.count())]
    assert all(any(plot in alt.lower() for alt in alts) for plot in PLOTS), alts
    widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.naturalWidth)")
    assert widths and all(w > 100 for w in widths)  # a broken data URI decodes to width 0
    assert requests == [(smoke_run / "report" / "report.html").as_uri()]  # self-contained
    assert (smoke_run / "report" / "screenshot.png").stat().st_size > 10_000
