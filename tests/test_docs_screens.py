"""The built guide in a real browser: headless Chromium (Debian's ``chromium``).

- No code block on any page needs a horizontal scrollbar at 1280 px: measured
  in the browser (``scrollWidth > clientWidth`` of every ``pre``), by a page
  that loads each built page in a frame of that width.
- At 390 px (a phone) the navigation is behind the menu button and the page
  does not scroll sideways.
- The quickstart and command line pages are screenshotted at 1280 and 390 px
  (into the session's temporary folder, printed with ``-s``) for a person to
  look at; the test checks they were drawn at that width and are not blank.

Without chromium the tests skip with the command that installs it, except
under CI (the ``CI`` environment variable), where they fail.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import struct
import subprocess
import typing as t
from pathlib import Path

import pytest
from test_docs import docs_html, group_commands, selfmigrate_cli

__all__ = ["docs_html"]  # the session's HTML build, shared with tests/test_docs.py

INSTALL = "apt-get install -y chromium"
WIDE, NARROW = 1280, 390


def chromium() -> str:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None)
    if found is None:
        message = f"Debian's chromium is not installed; install it with: {INSTALL}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def run_chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


# Loads each page in a frame of the given width, one after the other, and
# writes what it measured into #measure-result.
MEASURE = """<!doctype html>
<html><head><meta charset="utf-8"><title>measure</title></head>
<body style="margin:0"><div id="measure-result">pending</div>
<script>
var jobs = %(jobs)s;
var results = [];
function measure(frame, job) {
  var doc = frame.contentDocument, win = frame.contentWindow;
  var pres = Array.prototype.slice.call(doc.querySelectorAll("pre"));
  var button = doc.querySelector(".nav-overlay-icon");
  var drawer = doc.querySelector(".sidebar-drawer");
  return {
    page: job.page, width: job.width, innerWidth: win.innerWidth, pres: pres.length,
    overflowing: pres.filter(function (p) { return p.scrollWidth > p.clientWidth; })
      .map(function (p) { return p.textContent.slice(0, 100); }),
    pageScrollWidth: doc.documentElement.scrollWidth,
    menuButtonShown: !!button && win.getComputedStyle(button).display !== "none",
    sidebarRight: drawer ? drawer.getBoundingClientRect().right : null,
    navigationShown: Array.prototype.slice.call(doc.querySelectorAll(".sidebar-tree a"))
      .filter(function (a) { var box = a.getBoundingClientRect(); return box.width > 0 && box.height > 0; })
      .map(function (a) { return a.getAttribute("href"); })
  };
}
function next(i) {
  if (i >= jobs.length) {
    document.getElementById("measure-result").textContent = JSON.stringify(results);
    return;
  }
  var frame = document.createElement("iframe");
  frame.style.cssText = "border:0;height:900px;width:" + jobs[i].width + "px";
  frame.onload = function () {
    results.push(measure(frame, jobs[i]));
    frame.remove();
    next(i + 1);
  };
  frame.src = jobs[i].page;
  document.body.appendChild(frame);
}
next(0);
</script></body></html>
"""

# A page whose code block cannot wrap: proves that the measurement sees overflow.
CONTROL = """<!doctype html><html><head><meta charset="utf-8"></head><body>
<pre style="white-space: pre; overflow-x: auto">%s</pre></body></html>
""" % ("x" * 400)


def measure(folder: Path, profile: Path, jobs: list[dict[str, object]]) -> list[dict[str, t.Any]]:
    driver = folder / "_measure.html"
    driver.write_text(MEASURE % {"jobs": json.dumps(jobs)}, encoding="utf-8")
    result = run_chromium(
        profile,
        "--allow-file-access-from-files",  # the driver reads the frames' documents
        "--virtual-time-budget=120000",
        "--window-size=1400,1000",
        "--dump-dom",
        driver.as_uri(),
    )
    found = re.search(r'<div id="measure-result">(.*?)</div>', result.stdout, re.S)
    assert found and found[1] != "pending", f"chromium measured nothing:\n{result.stderr[-3000:]}"
    measured: list[dict[str, t.Any]] = json.loads(html.unescape(found[1]))
    assert [(m["page"], m["width"]) for m in measured] == [(j["page"], j["width"]) for j in jobs]
    return measured


@pytest.fixture(scope="module")
def measured(docs_html: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int], dict[str, t.Any]]:
    """Every page at 1280 px, the quickstart and command line pages at 390 px, and the control page."""
    chromium()
    (docs_html / "_control.html").write_text(CONTROL, encoding="utf-8")
    pages = sorted(p.name for p in docs_html.glob("*.html") if not p.name.startswith("_"))
    jobs: list[dict[str, object]] = [{"page": page, "width": WIDE} for page in [*pages, "_control.html"]]
    jobs += [{"page": page, "width": NARROW} for page in ("quickstart.html", "cli.html")]
    results = measure(docs_html, tmp_path_factory.mktemp("chromium-profile"), jobs)
    return {(m["page"], m["width"]): m for m in results}


def test_the_measurement_sees_a_code_block_that_overflows(measured: dict[tuple[str, int], dict[str, t.Any]]) -> None:
    control = measured[("_control.html", WIDE)]
    assert control["pres"] == 1 and len(control["overflowing"]) == 1, control


def test_no_code_block_needs_a_horizontal_scrollbar_at_1280px(
    measured: dict[tuple[str, int], dict[str, t.Any]], docs_html: Path
) -> None:
    overflowing = {}
    for (page, width), result in measured.items():
        if width != WIDE or page.startswith("_"):
            continue
        assert result["innerWidth"] == WIDE, result
        # Every code block of the built file was there to be measured.
        assert result["pres"] == (docs_html / page).read_text(encoding="utf-8").count("<pre"), result
        if result["overflowing"]:
            overflowing[page] = result["overflowing"]
    assert sum(m["pres"] for m in measured.values()) > 50
    assert overflowing == {}


@pytest.mark.parametrize("page", ["quickstart.html", "cli.html"])
def test_on_a_phone_the_navigation_is_behind_the_menu_button(
    measured: dict[tuple[str, int], dict[str, t.Any]], page: str
) -> None:
    narrow, wide = measured[(page, NARROW)], measured[(page, WIDE)]
    assert narrow["innerWidth"] == NARROW
    assert narrow["menuButtonShown"] and narrow["sidebarRight"] <= 0, narrow
    assert narrow["pageScrollWidth"] <= NARROW and narrow["overflowing"] == [], narrow
    assert not wide["menuButtonShown"] and wide["sidebarRight"] > 0, wide


def test_on_the_command_line_page_every_command_is_shown_in_the_sidebar(
    measured: dict[tuple[str, int], dict[str, t.Any]],
) -> None:
    shown = set(measured[("cli.html", WIDE)]["navigationShown"])
    commands = {f"#{command}" for command in group_commands(selfmigrate_cli())}
    assert commands <= shown, sorted(commands - shown)


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = struct.unpack(">II", header[16:24])
    return width, height


@pytest.mark.parametrize("width, height", [(WIDE, 1000), (NARROW, 844)])
@pytest.mark.parametrize("page", ["quickstart.html", "cli.html"])
def test_screenshot(
    docs_html: Path, tmp_path_factory: pytest.TempPathFactory, page: str, width: int, height: int
) -> None:
    chromium()
    shots = tmp_path_factory.getbasetemp() / "screenshots"
    shots.mkdir(exist_ok=True)
    shot = shots / f"{Path(page).stem}-{width}.png"
    result = run_chromium(
        tmp_path_factory.mktemp("chromium-profile"),
        f"--window-size={width},{height}",
        f"--screenshot={shot}",
        (docs_html / page).as_uri(),
    )
    assert shot.is_file(), result.stderr[-3000:]
    print(f"screenshot: {shot}")
    assert png_size(shot) == (width, height)
    # A blank page compresses to a few kB; a drawn one with text is far larger.
    assert shot.stat().st_size > 20_000, shot
