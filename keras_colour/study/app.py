"""The study and colourise web app (Flask, served by waitress).

Flask because the app is a handful of server-rendered pages over SQLite: synchronous code, Jinja's
autoescaping, a test client, and no JavaScript build; waitress because it is a pure-Python production WSGI
server with a thread pool (20 participants at once are 20 threads), on every platform.

Pages: `/` instructions, `/question` one image at a time, `/thanks`, `/resume?token=...` to continue on any
browser, and, when a generator is given, `/colourise` (upload photographs, see input and colourisation side by
side with a slider, download the PNG).
"""

import io
import os
import random
import re
import secrets
import tempfile
import threading
from collections import OrderedDict

import numpy as np
from flask import Flask, abort, make_response, redirect, render_template_string, request, send_file, url_for
from PIL import Image
from waitress import serve as waitress_serve

from keras_colour import colour
from keras_colour.colourise import colourise_array
from keras_colour.data.images import decode_to_rgb8
from keras_colour.precision import Precision
from keras_colour.study.create import load_manifest
from keras_colour.study.store import AnswerStore, DuplicateAnswer

COOKIE = "kc_participant"
_ID = re.compile(r"^[0-9a-f]{16}$")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
 body { font-family: system-ui, sans-serif; max-width: 980px; margin: 2em auto; padding: 0 1em; color: #222; }
 h1 { font-size: 1.6em; } .muted { color: #666; font-size: .9em; }
 .shot { display: block; margin: 1em auto; max-width: 100%; width: 512px; image-rendering: auto;
         border: 1px solid #ccc; }
 .choices { display: flex; gap: 1em; justify-content: center; }
 button { font-size: 1.1em; padding: .7em 1.4em; border-radius: 6px; border: 1px solid #888; cursor: pointer; }
 button.real { background: #e8f5e9; } button.computer { background: #e3f2fd; }
 .error { background: #fdecea; border: 1px solid #f5c2c0; padding: .8em 1em; border-radius: 6px; }
 .compare { position: relative; display: inline-block; max-width: 100%; }
 .compare img { display: block; max-width: 100%; }
 .compare .top { position: absolute; top: 0; left: 0; height: 100%; overflow: hidden; }
 .compare .top img { max-width: none; height: 100%; }
 .pair { display: flex; gap: 1em; flex-wrap: wrap; } .pair figure { margin: 0; flex: 1 1 300px; }
 .pair img { width: 100%; } progress { width: 100%; }
 .slider { display: block; width: 100%; max-width: 640px; margin: .5em 0; }
</style></head><body>
{{ body|safe }}
</body></html>"""


def _page(title, body, status=200, **context):
    html = render_template_string(PAGE, title=title, body=render_template_string(body, **context))
    return make_response(html, status)


def participant_plan(manifest, number, seed):
    """The images one participant sees, in order: every scene once, models balanced and interleaved.

    Participant `number` sees scene `s` as model `(s + number) mod M`, so over M participants every scene is
    shown in every version equally often; the order cycles through the models (shuffled within each).
    """
    models = manifest["models"]
    by_key = {(e["scene"], e["model"]): e for e in manifest["images"]}
    rng = random.Random(f"{seed}-{number}")
    groups = {m: [] for m in models}
    for scene in range(manifest["scenes"]):
        model = models[(scene + number) % len(models)]
        groups[model].append(by_key[scene, model])
    for entries in groups.values():
        rng.shuffle(entries)
    order = rng.sample(models, len(models))
    plan = []
    while any(groups.values()):
        for model in order:
            if groups[model]:
                plan.append(groups[model].pop())
    return plan


def create_app(study_dir=None, model=None, max_upload_mb=20, precision="auto", engine="auto"):
    """The Flask app: the study pages when `study_dir` is given, the colourise page when `model` is given.

    The colourise page runs the model as `keras-colour colourise` does, in `precision` (`keras_colour.precision`)
    on `engine` (`keras_colour.engines`).
    """
    runner = Precision(model, precision, engine, batch_size=1, images=1) if model is not None else None
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = int(max_upload_mb * 2**20)
    state = {}
    if study_dir is not None:
        state["manifest"] = manifest = load_manifest(study_dir)
        state["images"] = {e["id"]: e for e in manifest["images"]}
        state["store"] = AnswerStore(os.path.join(study_dir, "answers.sqlite"))
    colourised = OrderedDict()  # id -> PNG bytes, the last 64 results
    lock = threading.Lock()

    def plan_for(token):
        number = state["store"].participant_number(token) if token else None
        if number is None:
            return None
        return participant_plan(state["manifest"], number, state["manifest"]["seed"])

    def to_questions(token):
        """Remembers the participant in this browser (90 days) and goes to their next image."""
        response = redirect(url_for("question"))
        response.set_cookie(COOKIE, token, httponly=True, samesite="Lax", max_age=90 * 24 * 3600)
        return response

    def need_study():
        if "manifest" not in state:
            abort(404)

    @app.get("/healthz")
    def health():
        return "ok"

    @app.get("/")
    def index():
        if "manifest" not in state:
            return redirect(url_for("colourise_form"))
        token = request.cookies.get(COOKIE)
        plan = plan_for(token)
        done = len(state["store"].answered(token)) if plan else 0
        return _page("Real or computer-coloured?", INSTRUCTIONS, n=state["manifest"]["scenes"], plan=plan, done=done)

    @app.post("/start")
    def start():
        need_study()
        token, _ = state["store"].new_participant()
        return to_questions(token)

    @app.get("/resume")
    def resume():
        need_study()
        token = request.args.get("token", "")
        if plan_for(token) is None:
            return _page("Unknown code", "<p class='error'>That participant code is not known.</p>", 404)
        return to_questions(token)

    @app.get("/question")
    def question():
        need_study()
        token = request.cookies.get(COOKIE)
        plan = plan_for(token)
        if plan is None:
            return redirect(url_for("index"))
        answered = state["store"].answered(token)
        remaining = [e for e in plan if e["id"] not in answered]
        if not remaining:
            return redirect(url_for("thanks"))
        return _page("Real or computer-coloured?", QUESTION, entry=remaining[0], index=len(answered) + 1,
                     total=len(plan), token=token)  # fmt: skip

    @app.post("/answer")
    def answer():
        need_study()
        token = request.cookies.get(COOKIE)
        plan = plan_for(token)
        if plan is None:
            return _page("Unknown participant", "<p class='error'>Start the study first.</p>", 403)
        image_id, choice = request.form.get("image", ""), request.form.get("answer", "")
        entry = next((e for e in plan if e["id"] == image_id), None)
        if entry is None or choice not in ("real", "computer"):
            return _page("Bad answer", "<p class='error'>That answer does not belong to this study.</p>", 400)
        try:
            response_ms = max(0, min(int(float(request.form.get("response_ms", "0"))), 24 * 3600 * 1000))
        except ValueError:
            return _page("Bad answer", "<p class='error'>The response time is not a number.</p>", 400)
        try:
            state["store"].add_answer(token, image_id, entry["scene"], entry["model"], choice, response_ms)
        except DuplicateAnswer:
            return _page("Already answered", DUPLICATE, 409)
        return redirect(url_for("question"))

    @app.get("/thanks")
    def thanks():
        need_study()
        return _page("Thank you", THANKS, token=request.cookies.get(COOKIE, ""))

    @app.get("/image/<image_id>.png")
    def image(image_id):
        need_study()
        if not _ID.match(image_id) or image_id not in state["images"]:
            abort(404)
        return send_file(os.path.join(study_dir, "images", f"{image_id}.png"), mimetype="image/png")

    @app.get("/colourise")
    def colourise_form():
        if model is None:
            abort(404)
        return _page("Colourise a photograph", UPLOAD, limit=max_upload_mb)

    @app.post("/colourise")
    def colourise_upload():
        if model is None:
            abort(404)
        files = [f for f in request.files.getlist("photos") if f and f.filename]
        if not files:
            return _page("Colourise a photograph", UPLOAD, 400, limit=max_upload_mb, error="Choose at least one file.")
        results, errors = [], []
        for upload in files:
            name = os.path.basename(upload.filename.replace("\\", "/")) or "photo"
            try:
                gray, coloured = _colourise_upload(runner, upload.read())
            except ValueError as e:
                errors.append(f"{name}: {e}")
                continue
            ids = []
            for png in (gray, coloured):
                key = secrets.token_hex(8)
                with lock:
                    colourised[key] = png
                    while len(colourised) > 64:
                        colourised.popitem(last=False)
                ids.append(key)
            results.append({"name": name, "gray": ids[0], "colour": ids[1], "download": os.path.splitext(name)[0]})
        status = 200 if results else 400
        return _page("Colourised", RESULTS, status, results=results, errors=errors, limit=max_upload_mb)

    @app.get("/colourised/<key>.png")
    def colourised_png(key):
        with lock:
            png = colourised.get(key) if _ID.match(key) else None
        if png is None:
            abort(404)
        name = request.args.get("download")
        return send_file(io.BytesIO(png), mimetype="image/png", as_attachment=bool(name),
                         download_name=f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name or 'colourised')}.png")  # fmt: skip

    @app.errorhandler(400)
    @app.errorhandler(404)
    @app.errorhandler(405)
    def client_error(error):
        return _page("Not found" if error.code == 404 else "Bad request", f"<p class='error'>{error.description}</p>",
                     error.code)  # fmt: skip

    @app.errorhandler(413)
    def too_large(error):
        return _page("File too large", UPLOAD, 413, limit=max_upload_mb,
                     error=f"The upload is larger than {max_upload_mb} MB; choose a smaller file.")  # fmt: skip

    return app


def _colourise_upload(runner, data):
    """(grayscale PNG, colourised PNG) bytes of an uploaded file, by the same path as `keras-colour colourise`."""
    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        try:
            rgb, alpha = decode_to_rgb8(f.name, with_alpha=True)
        except Exception:
            raise ValueError("not an image this page can read (JPEG, PNG, BMP, GIF, WebP, TIFF)") from None
    coloured = colourise_array(runner.float32_model, rgb, runner)
    lightness = colour.rgb_to_lab(rgb / 255.0)[..., :1]
    gray = colour.to_uint8(colour.lab_to_rgb(np.concatenate([lightness, np.zeros(rgb.shape[:2] + (2,))], -1)))
    pngs = []
    for image in (gray, coloured):
        out = Image.fromarray(image) if alpha is None else Image.fromarray(np.dstack([image, alpha]), "RGBA")
        buffer = io.BytesIO()
        out.save(buffer, format="PNG", compress_level=1)
        pngs.append(buffer.getvalue())
    return pngs


def serve(app, host="127.0.0.1", port=8000, threads=16):
    """Runs the app with waitress (blocking)."""
    waitress_serve(app, host=host, port=port, threads=threads, ident="keras-colour")


INSTRUCTIONS = """
<h1>Real photograph, or computer-coloured?</h1>
<p>You will see {{ n }} colour images, one at a time. Some are real colour photographs; others are grayscale
photographs that a computer coloured. For each, answer <b>Real photograph</b> or <b>Computer-coloured</b>.
Go with your first impression: there is no time limit, but there is no need to study each image.</p>
<p class="muted">Your answers are stored anonymously with a random participant code. You can close the page and
come back later: this browser remembers where you were.</p>
{% if plan and done < plan|length %}
<form method="get" action="/question">
  <button class="real" id="continue">Continue ({{ done }} of {{ plan|length }} done)</button>
</form>
{% else %}
<form method="post" action="/start"><button class="real" id="start">Start</button></form>
{% endif %}
"""

QUESTION = """
<h1>Real photograph, or computer-coloured?</h1>
<p class="muted">Image {{ index }} of {{ total }}</p>
<progress value="{{ index - 1 }}" max="{{ total }}"></progress>
<img class="shot" id="shot" src="/image/{{ entry.id }}.png" alt="image {{ index }}">
<form method="post" action="/answer" id="answer-form" class="choices">
  <input type="hidden" name="image" value="{{ entry.id }}">
  <input type="hidden" name="response_ms" id="response_ms" value="0">
  <button class="real" name="answer" value="real" id="real">Real photograph</button>
  <button class="computer" name="answer" value="computer" id="computer">Computer-coloured</button>
</form>
<p class="muted">Participant code: <code id="token">{{ token }}</code> (to continue elsewhere: /resume?token=…)</p>
<script>
 const shown = performance.now();
 document.getElementById("answer-form").addEventListener("submit", () => {
   document.getElementById("response_ms").value = Math.round(performance.now() - shown);
 });
</script>
"""

DUPLICATE = """<p class="error">You have already answered this image.</p><p><a href="/question">Next image</a></p>"""

THANKS = """
<h1>Thank you!</h1>
<p id="done">All images are answered. Your participant code was <code>{{ token }}</code>.</p>
"""

UPLOAD = """
<h1>Colourise a photograph</h1>
{% if error %}<p class="error" id="error">{{ error }}</p>{% endif %}
<p>Choose one or more grayscale (or colour) photographs, up to {{ limit }} MB each request. They are colourised on
this machine at full resolution and never leave it.</p>
<form method="post" action="/colourise" enctype="multipart/form-data">
  <input type="file" name="photos" id="photos" multiple accept="image/*">
  <button class="real" id="submit">Colourise</button>
</form>
"""

RESULTS = """
<h1>Colourised</h1>
{% for e in errors %}<p class="error error-item">{{ e }}</p>{% endfor %}
{% for r in results %}
<h2>{{ r.name }}</h2>
<div class="compare" id="compare-{{ loop.index }}">
  <img src="/colourised/{{ r.colour }}.png" alt="colourised {{ r.name }}" class="colour">
  <div class="top" style="width: 50%"><img src="/colourised/{{ r.gray }}.png" alt="grayscale {{ r.name }}"></div>
</div>
<input type="range" min="0" max="100" value="50" class="slider" data-target="compare-{{ loop.index }}"
       aria-label="grayscale / colour divider">
<p><a class="download" href="/colourised/{{ r.colour }}.png?download={{ r.download }}">
  Download the colourised PNG</a></p>
{% endfor %}
<p><a href="/colourise">Colourise more</a></p>
<script>
 for (const slider of document.querySelectorAll(".slider")) {
   const box = document.getElementById(slider.dataset.target);
   const top = box.querySelector(".top"), img = top.querySelector("img");
   const fit = () => { img.style.width = box.clientWidth + "px"; };
   box.querySelector(".colour").addEventListener("load", fit); window.addEventListener("resize", fit); fit();
   slider.addEventListener("input", () => { top.style.width = slider.value + "%"; });
 }
</script>
"""
