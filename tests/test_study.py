"""The naturalness study and the colourise page, driven in a real headless browser (Debian's chromium)."""

import csv
import http.cookiejar
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest
from PIL import Image

from helpers import ROOT, built_once, cli, one_line_error, tiny_overrides

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SCENES = 10


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`keras-colour study serve` (or `serve`) in a subprocess on a free localhost port."""

    def __init__(self, *args):
        self.args, self.port, self.proc = args, _free_port(), None

    def start(self):
        env = dict(os.environ)
        env.pop("TF_CPP_MIN_LOG_LEVEL", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "keras_colour.cli", *map(str, self.args), "--port", str(self.port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env,
        )  # fmt: skip
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(self.url("/healthz"), timeout=2) as r:
                    if r.read() == b"ok":
                        return self
            except OSError:
                assert self.proc.poll() is None, self.proc.stdout.read()
                time.sleep(0.2)
        raise AssertionError("server did not start")

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, demo_cache):
    """Two tiny quick-start runs (Gorriz and U-Net), trained once a session."""

    def build(base):
        from keras_colour.config import load_config
        from keras_colour.experiment import train

        out = []
        unet = {"model.generator": "unet", "model.discriminator": "none", "loss.adversarial": "none"}
        for name, extra in (("gorriz", {}), ("unet", unet)):
            overrides = tiny_overrides(output_dir=str(base / name), name=name, **extra)
            train(load_config(os.path.join(ROOT, "experiments", "quickstart.yaml"), overrides))
            out.append(base / name)
        return out

    return built_once(tmp_path_factory, "study_runs", build)


@pytest.fixture
def study(runs, tmp_path):
    from keras_colour.study.create import create_study

    create_study([str(r) for r in runs], SCENES, str(tmp_path / "study"), seed=3)
    return tmp_path / "study"


@pytest.fixture
def server(study, runs):
    srv = Server("study", "serve", study, "--model", runs[0] / "generator.keras", "--max-upload-mb", 2).start()
    yield srv
    srv.stop()


@pytest.fixture
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        message = "the browser tests need Debian's chromium and its driver: apt-get install chromium chromium-driver"
        if os.environ.get("KERAS_COLOUR_REQUIRE_BROWSER") == "1":  # set by .ci/run: CI never skips them
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    drivers = []

    def make():
        options = Options()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,950"):
            options.add_argument(arg)
        drivers.append(webdriver.Chrome(service=Service(CHROMEDRIVER), options=options))
        return drivers[-1]

    yield make
    for driver in drivers:
        driver.quit()


def _click_and_wait(driver, element_id):
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    element = driver.find_element(By.ID, element_id)
    element.click()

    def replaced(_):
        # The page was replaced by the next one. Chromium reports a node from the old document either as stale or,
        # while the new document loads, as "Node with given id does not belong to the document".
        try:
            return expected_conditions.staleness_of(element)(driver)
        except WebDriverException as e:
            if "does not belong to the document" in str(e):
                return True
            raise

    WebDriverWait(driver, 30).until(replaced)


def _answer_in_browser(driver, count, clicks):
    from selenium.webdriver.common.by import By

    for i in range(count):
        image = driver.find_element(By.NAME, "image").get_attribute("value")
        choice = "real" if (i * 7) % 3 else "computer"
        clicks.append((driver.get_cookie("kc_participant")["value"], image, choice))
        _click_and_wait(driver, choice)


def test_participants_complete_and_resume_in_a_browser_and_results_count_every_click(server, study, browser, tmp_path):
    manifest = json.loads((study / "manifest.json").read_text())
    model_of = {e["id"]: e["model"] for e in manifest["images"]}
    scene_of = {e["id"]: e["scene"] for e in manifest["images"]}
    clicks = []

    first = browser()
    first.get(server.url("/"))
    first.save_screenshot(str(tmp_path / "instructions.png"))
    _click_and_wait(first, "start")
    first.save_screenshot(str(tmp_path / "question.png"))
    _answer_in_browser(first, SCENES, clicks)
    assert first.current_url.endswith("/thanks") and "All images are answered" in first.page_source

    second = browser()
    second.get(server.url("/"))
    _click_and_wait(second, "start")
    _answer_in_browser(second, 4, clicks)
    token = second.get_cookie("kc_participant")["value"]
    second.quit()  # closes the tab half-way
    third = browser()  # another browser, the same participant code
    third.get(server.url(f"/resume?token={token}"))
    from selenium.webdriver.common.by import By

    assert third.find_element(By.CSS_SELECTOR, "p.muted").text.startswith("Image 5 of 10")
    _answer_in_browser(third, SCENES - 4, clicks)
    assert third.current_url.endswith("/thanks")

    for participant in {c[0] for c in clicks}:
        mine = [c for c in clicks if c[0] == participant]
        assert len(mine) == SCENES and len({scene_of[c[1]] for c in mine}) == SCENES  # every scene once, no repeat
    # models interleaved: the first three images of a participant are three different versions
    assert len({model_of[c[1]] for c in clicks[:3]}) == 3

    result = subprocess.run(
        [sys.executable, "-m", "keras_colour.cli", "study", "results", str(study), "--output", str(tmp_path / "res")],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {r["model"]: r for r in csv.DictReader(open(tmp_path / "res" / "results.csv"))}
    for model in manifest["models"]:
        mine = [c for c in clicks if model_of[c[1]] == model]
        assert int(rows[model]["answers"]) == len(mine)
        assert int(rows[model]["judged_real"]) == sum(c[2] == "real" for c in mine)
    assert sum(int(r["answers"]) for r in rows.values()) == 2 * SCENES
    assert (tmp_path / "res" / "naturalness.png").stat().st_size > 10_000
    assert "Thesis Table 4" in (tmp_path / "res" / "results.md").read_text()


class Participant:
    """A participant over plain HTTP (its own cookie jar)."""

    def __init__(self, server):
        self.server = server
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def post(self, path, fields):
        data = urllib.parse.urlencode(fields).encode()
        return self.opener.open(self.server.url(path), data=data, timeout=60)

    def start(self):
        return self.post("/start", {}).read().decode()

    def current_image(self, page=None):
        page = page or self.opener.open(self.server.url("/question"), timeout=60).read().decode()
        match = re.search(r'name="image" value="([0-9a-f]{16})"', page)
        return match.group(1) if match else None

    def answer(self, image, choice="real"):
        return self.post("/answer", {"image": image, "answer": choice, "response_ms": 1234}).read().decode()


def _stored(study):
    with sqlite3.connect(study / "answers.sqlite") as db:
        return db.execute("SELECT participant, image, answer FROM answers ORDER BY id").fetchall()


def test_sigkill_between_two_answers_loses_no_stored_answer(study, runs):
    server = Server("study", "serve", study).start()
    try:
        person = Participant(server)
        page = person.start()
        first = person.current_image(page)
        person.answer(first, "real")
        server.kill()  # between two answers
        assert [row[1:] for row in _stored(study)] == [(first, "real")]
        server.start()
        second = person.current_image()
        assert second != first
        person.answer(second, "computer")
        assert [row[1:] for row in _stored(study)] == [(first, "real"), (second, "computer")]
    finally:
        server.stop()


def test_twenty_concurrent_participants_store_every_answer_once(server, study):
    errors = []

    def participate():
        try:
            person = Participant(server)
            page = person.start()
            for _ in range(SCENES):
                page = person.answer(person.current_image(page))
        except Exception as e:  # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=participate) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors[:3]
    rows = _stored(study)
    assert len(rows) == 20 * SCENES and len(set(rows)) == 20 * SCENES
    assert len({(p, i) for p, i, _ in rows}) == 20 * SCENES and len({p for p, _, _ in rows}) == 20


def test_bad_requests_are_refused_and_the_server_keeps_working(server, study):
    person = Participant(server)
    image = person.current_image(person.start())
    for path in ("/image/../manifest.json", "/image/..%2Fmanifest.json", "/image/0123456789abcdef.png",
                 "/colourised/..%2F..%2Fetc%2Fpasswd.png"):  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as e:
            person.opener.open(server.url(path), timeout=30)
        assert e.value.code == 404, path
    for fields, code in (({"image": "0123456789abcdef", "answer": "real"}, 400),
                         ({"image": image, "answer": "maybe"}, 400),
                         ({}, 400)):  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as e:
            person.post("/answer", fields)
        assert e.value.code == code
    person.answer(image)
    with pytest.raises(urllib.error.HTTPError) as e:
        person.answer(image)  # one answer per image per participant
    assert e.value.code == 409
    with socket.create_connection(("127.0.0.1", server.port)) as raw:  # a malformed request
        raw.sendall(b"GARBAGE / HTTP/9.9\r\n\x00\x01\r\n\r\n")
        raw.recv(1024)
    with urllib.request.urlopen(server.url("/healthz"), timeout=30) as r:
        assert r.read() == b"ok"
    assert len(_stored(study)) == 1


def test_colourise_page_gives_the_cli_pixels_and_refuses_bad_uploads(server, runs, browser, tmp_path):
    import skimage.data
    from selenium.webdriver.common.by import By

    photo = tmp_path / "cat.jpg"
    Image.fromarray(skimage.data.chelsea()).save(photo, quality=92)
    driver = browser()
    driver.get(server.url("/colourise"))
    driver.save_screenshot(str(tmp_path / "upload.png"))
    driver.find_element(By.ID, "photos").send_keys(str(photo))
    _click_and_wait(driver, "submit")
    driver.save_screenshot(str(tmp_path / "colourised.png"))
    link = driver.find_element(By.CSS_SELECTOR, "a.download").get_attribute("href")
    with urllib.request.urlopen(link, timeout=60) as r:
        (tmp_path / "page.png").write_bytes(r.read())
        assert "attachment" in r.headers["Content-Disposition"] and "cat.png" in r.headers["Content-Disposition"]
    cli = subprocess.run(
        [sys.executable, "-m", "keras_colour.cli", "colourise", "--model", str(runs[0] / "generator.keras"),
         str(photo), "--output", str(tmp_path / "cli")],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr[-2000:]
    page_pixels = np.asarray(Image.open(tmp_path / "page.png"))
    np.testing.assert_array_equal(page_pixels, np.asarray(Image.open(tmp_path / "cli" / "cat.png")))
    assert page_pixels.shape == skimage.data.chelsea().shape  # full resolution

    (tmp_path / "notes.jpg").write_text("not a photograph")
    driver.get(server.url("/colourise"))
    driver.find_element(By.ID, "photos").send_keys(str(tmp_path / "notes.jpg"))
    _click_and_wait(driver, "submit")
    assert "notes.jpg: not an image" in driver.find_element(By.CSS_SELECTOR, ".error-item").text

    (tmp_path / "huge.jpg").write_bytes(os.urandom(3 * 2**20))  # the server's limit is 2 MB
    driver.get(server.url("/colourise"))
    driver.find_element(By.ID, "photos").send_keys(str(tmp_path / "huge.jpg"))
    _click_and_wait(driver, "submit")
    assert "larger than 2.0 MB" in driver.find_element(By.ID, "error").text
    with urllib.request.urlopen(server.url("/healthz"), timeout=30) as r:
        assert r.read() == b"ok"


def test_plans_balance_models_across_participants(study):
    from keras_colour.study.app import participant_plan

    manifest = json.loads((study / "manifest.json").read_text())
    counts = {}
    for number in range(len(manifest["models"]) * 2):
        plan = participant_plan(manifest, number, manifest["seed"])
        assert sorted(e["scene"] for e in plan) == list(range(SCENES))
        for e in plan:
            counts[e["scene"], e["model"]] = counts.get((e["scene"], e["model"]), 0) + 1
    assert set(counts.values()) == {2}  # every scene in every version equally often


def test_wilson_interval_matches_known_values():
    from keras_colour.study.results import wilson_interval

    low, high = wilson_interval(8, 10)
    assert (round(low, 3), round(high, 3)) == (0.49, 0.943)
    low, high = wilson_interval(0, 1)
    assert low == 0.0 and round(high, 4) == 0.7935


def test_serving_beyond_this_machine_is_said_out_loud(runs):
    server = Server("serve", "--model", runs[0] / "generator.keras", "--host", "0.0.0.0").start()
    try:
        with urllib.request.urlopen(server.url("/"), timeout=60) as r:  # the colourise page alone
            assert r.geturl().endswith("/colourise") and b'type="file"' in r.read()
    finally:
        server.stop()
    output = server.proc.stdout.read()
    assert "warning: serving on 0.0.0.0: other machines on the network can reach this page" in output


def test_two_runs_of_one_yaml_are_told_apart_by_folder_or_label(runs, tmp_path):
    """Two seeds of one YAML share their `name`: the study calls them by their folders, or by the labels given."""
    for folder in ("seed1", "seed2"):
        shutil.copytree(runs[0], tmp_path / folder)
    a, b = tmp_path / "seed1", tmp_path / "seed2"
    result = cli("study", "create", a, b, "--images", 2, "--output", tmp_path / "s1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "s1" / "manifest.json").read_text())["models"] == ["ground truth", "seed1", "seed2"]
    result = cli("study", "create", f"{a}=first", f"{b}=second", "--images", 2, "--output", tmp_path / "s2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "s2" / "manifest.json").read_text())["models"] == ["ground truth", "first", "second"]
    one_line_error(cli("study", "create", f"{a}=x", f"{b}=x", "--output", tmp_path / "s3"), "labels repeat")


def test_run_labels_fall_back_to_folders_where_names_repeat():
    from keras_colour.run_folder import labelled_runs, run_labels

    assert labelled_runs(["runs/a=seed 1", "runs/b"]) == [("runs/a", "seed 1"), ("runs/b", None)]
    assert run_labels(["r/a", "r/b", "r/c"], ["q", "q", "unet"]) == ["a", "b", "unet"]
    assert run_labels(["x/a", "y/a"], ["q", "q"]) == ["x/a", "y/a"]
    assert run_labels(["r/a", "r/b"], ["q", "q"], ["one", None]) == ["one", "q"]
