"""The report page in a real browser: headless Debian Chromium loads every image and renders
every table (the check runs as a small script that writes its findings into the DOM)."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHECK = """<script>
window.addEventListener("load", () => {
  const images = [...document.images].map(i => ({src: i.getAttribute("src"),
                                                  width: i.naturalWidth}));
  const tables = [...document.querySelectorAll("table")].map(t => ({
    rows: t.querySelectorAll("tbody tr").length, height: t.getBoundingClientRect().height}));
  const out = document.createElement("pre");
  out.id = "complaw-check";
  out.textContent = JSON.stringify({images, tables});
  document.body.appendChild(out);
});
</script>"""

pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="chromium is not installed (apt-get install chromium; CI installs it via .ci/run)",
)


def browse(index) -> dict:
    """Open a copy of ``index`` (beside it, so relative image paths hold) with the check
    script added, and return what the script found."""
    assert CHROMIUM, "chromium is required in CI (.ci/run installs it)"
    page = index.with_name("check.html")
    page.write_text(index.read_text().replace("</body>", CHECK + "</body>"))
    profile = index.parent / ".chromium-profile"
    try:
        done = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--allow-file-access-from-files", "--virtual-time-budget=10000",
             f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=120,
        )
    finally:
        page.unlink()
        shutil.rmtree(profile, ignore_errors=True)
    found = re.search(r'<pre id="complaw-check">(.*?)</pre>', done.stdout, re.S)
    assert found, (done.returncode, done.stderr[-2000:])
    return json.loads(html.unescape(found.group(1)))


def _check(report) -> dict:
    seen = browse(report.index)
    shown = [i["src"] for i in seen["images"]]
    # Each figure once; the answer section shows its figures first, so compare as sets.
    assert len(shown) == len(set(shown))
    assert set(shown) == {f"figures/{n}.png" for n in report.figures}
    for image in seen["images"]:
        assert image["width"] > 0, image
    assert len(seen["tables"]) == len(report.tables)
    for table in seen["tables"]:
        assert table["rows"] > 0 and table["height"] > 0, table
    return seen


def test_full_report_in_chromium(full_report):
    seen = _check(full_report)
    assert len(seen["images"]) == len(full_report.figures) == 15  # with the per-task figure


def test_partial_report_in_chromium(partial_report):
    _check(partial_report)
