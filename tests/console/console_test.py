"""The web console in a real headless Chromium (Debian's chromium + chromedriver, via Selenium),
against a local stack that tests/api/console.rs started: sign in as site staff, upload a real DICOM
file and an EICAR file and see PROCESSED and QUARANTINED; interrupt a multipart upload with a page
reload and see it resume without re-sending the parts storage holds; a monitor of another site
cannot see the subject; a monitor of the subject's site and trial reads the risk report and the
ePRO pain chart, asks for a CSV export, follows it to DONE and downloads it. Screenshots of the main
screens go to $SCREENSHOTS.

Environment: CONSOLE_URL (the stack's HttpApi, which serves web/), SCREENSHOTS (a folder), RESULT
(a JSON file this writes for the Rust test to check against what was stored), DIARY_DAYS (the
diary days the Rust test wrote for SUBJ-0001).
"""
import json
import os
import sys
import tempfile
import time
import urllib.request

from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

URL = os.environ["CONSOLE_URL"].rstrip("/") + "/"
SHOTS = os.environ["SCREENSHOTS"]
RESULT = os.environ["RESULT"]
DIARY_DAYS = int(os.environ.get("DIARY_DAYS", "0"))
TRIAL = "CLIN-DEMO-01"
PART = 5 * 1024 * 1024
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def wait_for(driver, timeout, poll_frequency=0.5):
    """A WebDriverWait that polls through re-renders: an element the page replaced between finding
    and reading it is stale, not a failure — the next poll finds the new one (seen once in CI on
    the imaging counts)."""
    return WebDriverWait(
        driver,
        timeout,
        poll_frequency=poll_frequency,
        ignored_exceptions=(StaleElementReferenceException,),
    )


work = tempfile.mkdtemp(prefix="console-test-")
os.makedirs(SHOTS, exist_ok=True)


def log(msg):
    print(f"[console {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def files():
    """A real DICOM file of the pydicom corpus, an EICAR file, and a 5-part DICOM file."""
    ct = get_testdata_file("CT_small.dcm")
    eicar = os.path.join(work, "eicar.dcm")
    with open(eicar, "wb") as f:
        f.write(EICAR)
    # CT_small with a 2048 x 2048 x 3 frame pixel matrix (24 MiB): five 5 MiB parts.
    ds = dcmread(ct)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesInstanceUID = generate_uid()
    ds.Rows, ds.Columns, ds.NumberOfFrames = 2048, 2048, 3
    ds.PixelData = os.urandom(2048 * 2048 * 2 * 3)
    big = os.path.join(work, "CT_large_multiframe.dcm")
    ds.save_as(big)
    return ct, eicar, big


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CLINFLOW_CHROMIUM", "/usr/bin/chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", "--lang=en-GB"):
        options.add_argument(arg)
    # The performance log: every request the browser sends, across reloads.
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    service = Service(os.environ.get("CLINFLOW_CHROMEDRIVER", "/usr/bin/chromedriver"))
    return webdriver.Chrome(service=service, options=options)


def part_puts(driver):
    """Part numbers of the multipart PUTs sent since the last call (drains the log)."""
    parts = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") != "Network.requestWillBeSent":
            continue
        req = msg["params"]["request"]
        if req["method"] == "PUT" and "partNumber=" in req["url"]:
            q = req["url"].split("?", 1)[1]
            n = [p.split("=", 1)[1] for p in q.split("&") if p.startswith("partNumber=")]
            parts.append(int(n[0]))
    return parts


def shot(driver, name):
    path = os.path.join(SHOTS, name)
    driver.save_screenshot(path)
    log(f"screenshot {path}")


def sign_in(driver, role, sites, trials=""):
    driver.get(URL)
    wait = wait_for(driver, 20)
    wait.until(EC.element_to_be_clickable((By.ID, "sign-in-button")))
    Select(driver.find_element(By.ID, "role")).select_by_value(role)
    field = driver.find_element(By.ID, "sites")
    field.clear()
    field.send_keys(sites)
    field = driver.find_element(By.ID, "trials")
    field.clear()
    field.send_keys(trials)
    driver.find_element(By.ID, "sign-in-button").click()
    wait.until(EC.presence_of_element_located((By.ID, "subject-id")))


def open_subject(driver, subject):
    field = driver.find_element(By.ID, "subject-id")
    field.clear()
    field.send_keys(subject + "\n")
    wait_for(driver, 20).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#subject-status p, #subject-status .problem"))


def api_requests(driver, fragment):
    """(method, url) of the requests whose URL holds `fragment` since the last call (drains the log)."""
    out = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") != "Network.requestWillBeSent":
            continue
        req = msg["params"]["request"]
        if fragment in req["url"] and req["method"] != "OPTIONS":
            out.append((req["method"], req["url"]))
    return out


def upload_item(driver, name):
    items = driver.find_elements(By.CSS_SELECTOR, f'#queue li[data-file="{name}"]')
    return items[0] if items else None


def wait_status(driver, name, statuses, timeout=90):
    def done(d):
        li = upload_item(d, name)
        return li if li is not None and li.get_attribute("data-status") in statuses else False
    try:
        return wait_for(driver, timeout, poll_frequency=0.25).until(done)
    except TimeoutException:
        li = upload_item(driver, name)
        raise AssertionError(f"{name}: not {statuses}: {li.text if li else 'no item'}")


def main():
    ct, eicar, big = files()
    result = {}
    driver = browser()
    try:
        wait = wait_for(driver, 30)
        driver.get(URL)
        wait.until(EC.element_to_be_clickable((By.ID, "sign-in-button")))
        shot(driver, "01-sign-in.png")

        log("site staff at SITE-BOS-01 uploads a DICOM file and an EICAR file to SUBJ-0001")
        sign_in(driver, "site_staff", "SITE-BOS-01")
        open_subject(driver, "SUBJ-0001")
        wait.until(EC.presence_of_element_located((By.ID, "file-input")))
        driver.find_element(By.ID, "file-input").send_keys(ct + "\n" + eicar)
        ok = wait_status(driver, "CT_small.dcm", {"PROCESSED"})
        bad = wait_status(driver, "eicar.dcm", {"QUARANTINED"})
        assert "Accepted" in ok.text, ok.text
        assert "malware scan found" in bad.text and "Eicar" in bad.text, bad.text
        result["dicom"] = ok.get_attribute("data-upload-id")
        result["eicar"] = bad.get_attribute("data-upload-id")
        # The history and imaging panels follow.
        wait_for(driver, 20).until(lambda d: d.find_element(By.ID, "count-instances").text == "1")
        wait_for(driver, 20).until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, "#history-panel tr[data-upload-id]")) >= 2)
        shot(driver, "02-upload-processed-and-quarantined.png")
        # Every control has an accessible name (a label, or aria-label), and the file pickers are
        # reachable by keyboard.
        unlabelled = driver.execute_script("""
            return [...document.querySelectorAll('input, select, button, progress')].filter(el => {
              if (el.type === 'hidden') return false;
              const byFor = el.id && document.querySelector(`label[for="${el.id}"]`);
              return !(byFor || el.getAttribute('aria-label') || (el.tagName === 'BUTTON' && el.textContent.trim()));
            }).map(el => el.outerHTML.slice(0, 80));""")
        assert not unlabelled, unlabelled
        assert driver.find_element(By.CSS_SELECTOR, 'label[for="file-input"]').get_attribute("tabindex") == "0"

        log("a 5-part upload, slowed to 4 MB/s, interrupted by a reload")
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
            "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 4_000_000})
        part_puts(driver)  # drain
        name = os.path.basename(big)
        driver.find_element(By.ID, "file-input").send_keys(big)
        wait_for(driver, 60, poll_frequency=0.05).until(
            lambda d: int((upload_item(d, name).get_attribute("data-parts-done") or "0")) >= 1)
        upload_id = upload_item(driver, name).get_attribute("data-upload-id")
        shot(driver, "03-multipart-sending.png")
        driver.refresh()
        before = part_puts(driver)
        driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
            "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
        wait.until(EC.presence_of_element_located((By.ID, "resume")))
        assert upload_id in driver.find_element(By.ID, "resume").get_attribute("innerHTML")
        shot(driver, "04-resume-after-reload.png")
        held = driver.execute_async_script("""
            const [id, done] = [arguments[0], arguments[arguments.length - 1]];
            const s = JSON.parse(sessionStorage.getItem('clinflow.session'));
            fetch('/v1/uploads/' + id + '/parts', { headers: { authorization: 'Bearer ' + s.token } })
              .then(r => r.json()).then(b => done(b.received.map(p => p.partNumber)));
        """, upload_id)
        part_count = -(-os.path.getsize(big) // PART)
        log(f"before the reload the browser sent parts {sorted(before)}; storage holds {sorted(held)} of {part_count}")
        assert 0 < len(held) < part_count, held

        log("the same file chosen again resumes the upload")
        driver.find_element(By.ID, "file-input").send_keys(big)
        li = wait_status(driver, name, {"PROCESSED"}, timeout=120)
        assert li.get_attribute("data-resumed") == "true", li.text
        assert li.get_attribute("data-upload-id") == upload_id
        after = part_puts(driver)
        log(f"after the reload the browser sent parts {sorted(after)}")
        assert not set(after) & set(held), f"re-sent stored parts: {set(after) & set(held)}"
        assert set(after) | set(held) == set(range(1, part_count + 1)), (after, held)
        assert len(after) == len(set(after)), f"a part sent twice: {after}"
        result.update(multipart=upload_id, held=sorted(held), resent=sorted(after), partCount=part_count)
        wait_for(driver, 60).until(lambda d: d.find_element(By.ID, "count-instances").text == "2")
        shot(driver, "05-subject-view.png")

        log("drug-code lookup")
        code = driver.find_element(By.ID, "drug-code")
        code.send_keys("N02BE01\n")
        wait_for(driver, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#drug-result .drug-name"))
        result["drug"] = driver.find_element(By.CSS_SELECTOR, "#drug-result .drug-name").text
        code.clear()
        code.send_keys("Z99ZZ99\n")
        wait_for(driver, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#drug-result .problem"))
        result["drugMissing"] = driver.find_element(By.CSS_SELECTOR, "#drug-result .problem").text

        driver.set_window_size(820, 1180)
        driver.execute_script("window.scrollTo(0, 0)")
        shot(driver, "06-tablet.png")
        driver.set_window_size(1280, 900)

        log("a monitor of SITE-LYN-02 cannot see SUBJ-0001")
        driver.find_element(By.ID, "sign-out").click()
        sign_in(driver, "monitor", "SITE-LYN-02")
        open_subject(driver, "SUBJ-0001")
        problem = driver.find_element(By.CSS_SELECTOR, "#subject-status .problem").text
        assert "Not found" in problem or "not found" in problem.lower(), problem
        assert not driver.find_elements(By.ID, "upload-panel")
        assert not driver.find_elements(By.ID, "history-panel")
        assert "CT_small" not in driver.page_source
        result["monitorOtherSite"] = problem
        shot(driver, "07-monitor-other-site.png")

        log("a monitor of SITE-BOS-01 in the demo trial sees the subject, without file names and without uploading")
        driver.find_element(By.ID, "sign-out").click()
        sign_in(driver, "monitor", "SITE-BOS-01", TRIAL)
        open_subject(driver, "SUBJ-0001")
        wait_for(driver, 20).until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, "#history-panel tr[data-upload-id]")) >= 3)
        assert not driver.find_elements(By.ID, "upload-panel")
        assert "CT_small" not in driver.find_element(By.ID, "history-panel").text

        log("the risk report and the ePRO pain chart")
        wait_for(driver, 30).until(lambda d: d.find_elements(By.ID, "risk-level"))
        reasons = driver.find_elements(By.CSS_SELECTOR, "#risk-reasons tr.reason-row")
        assert reasons, driver.find_element(By.ID, "report-panel").text
        result["reasons"] = [r.get_attribute("data-code") for r in reasons]
        result["riskLevel"] = driver.find_element(By.ID, "risk-level").text
        # The Rust test pointed the report's imaging source at a closed port: that section is
        # marked with its reason, the others are there, and the score is a lower bound.
        sections = {li.get_attribute("data-section"): li for li in
                    driver.find_elements(By.CSS_SELECTOR, "#report-sections li")}
        assert set(sections) == {"edc", "epro", "imaging"}, list(sections)
        result["unavailable"] = sorted(k for k, li in sections.items() if li.get_attribute("data-available") == "false")
        assert "not available" in sections["imaging"].text and "(unavailable)" in sections["imaging"].text, \
            sections["imaging"].text
        lower = driver.find_element(By.ID, "risk-lower-bound").text
        assert "Lower bound" in lower and "Imaging" in lower, lower
        assert " or more" in driver.find_element(By.CSS_SELECTOR, ".risk-head").text
        wait_for(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#pain-chart circle.pain-point"))
        points = driver.find_elements(By.CSS_SELECTOR, "#pain-chart circle.pain-point")
        assert len(points) == DIARY_DAYS, (len(points), DIARY_DAYS)
        result["painPoints"] = len(points)
        # Accessible: a title and a description, and the same numbers as a table.
        assert driver.find_element(By.CSS_SELECTOR, "#pain-chart title").get_attribute("textContent").startswith("Pain per day")
        assert f"on {DIARY_DAYS} diary days" in driver.find_element(By.CSS_SELECTOR, "#pain-chart desc").get_attribute("textContent")
        assert len(driver.find_elements(By.CSS_SELECTOR, "#pain-table tbody tr")) == DIARY_DAYS
        driver.set_window_size(1280, 1400)
        driver.execute_script("document.getElementById('subject-title').scrollIntoView()")
        shot(driver, "08-report-and-pain-chart.png")

        log("a CSV export, followed to DONE, then its link")
        api_requests(driver, "/v1/")  # drain
        driver.find_element(By.ID, "export-csv").click()
        wait_for(driver, 20).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, '#exports-table tr[data-format="csv"]'))
        row = driver.find_element(By.CSS_SELECTOR, '#exports-table tr[data-format="csv"]')
        export_id = row.get_attribute("data-export-id")
        seen = set()

        def done(d):
            r = d.find_element(By.CSS_SELECTOR, f'#exports-table tr[data-export-id="{export_id}"]')
            seen.add(r.get_attribute("data-status"))
            return r if r.get_attribute("data-status") in ("DONE", "FAILED") else False
        try:
            row = wait_for(driver, 90, poll_frequency=0.2).until(done)
        except TimeoutException:
            raise AssertionError(driver.find_element(By.ID, "exports-panel").text)
        assert row.get_attribute("data-status") == "DONE", row.text
        log(f"export {export_id}: statuses seen {sorted(seen)}")
        # Following it read the list only: no GET of the export itself (that hands out an audited
        # link) before the click.
        calls = api_requests(driver, "/v1/")
        assert ("POST", URL.rstrip("/") + "/v1/subjects/SUBJ-0001/exports") in calls, calls
        assert not [c for c in calls if "/v1/exports/" in c[1]], calls
        row.find_element(By.CSS_SELECTOR, "td.download button").click()
        link = wait_for(driver, 20).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, f'#exports-table tr[data-export-id="{export_id}"] a.download-link'))[0]
        assert driver.switch_to.active_element == link, "the link has the focus"
        calls = api_requests(driver, "/v1/")
        assert [c for c in calls if "/v1/exports/" in c[1]] == [("GET", URL.rstrip("/") + f"/v1/exports/{export_id}")], calls
        with urllib.request.urlopen(link.get_attribute("href"), timeout=20) as r:
            body = r.read()
            result["downloadStatus"] = r.status
        result["downloadBytes"] = len(body)
        assert body.startswith(b"\xef\xbb\xbf") or b"," in body.splitlines()[0], body[:200]
        result["export"] = export_id
        driver.execute_script("document.getElementById('exports-panel').scrollIntoView()")
        shot(driver, "09-exports.png")
        driver.set_window_size(1280, 900)
        # Nothing the console logged is a stack trace or an uncaught error.
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and "404" not in e["message"]]
        assert not errors, errors
    except Exception:
        shot(driver, "failure.png")
        raise
    finally:
        driver.quit()
    with open(RESULT, "w") as f:
        json.dump(result, f)
    log(f"passed: {json.dumps(result)}")


if __name__ == "__main__":
    sys.exit(main())
