import os
import re
import subprocess

from helpers import ROOT


def _commands():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    return re.findall(r"^    (\S.*)$", text.split("---")[0], flags=re.M)


def test_readme_opens_with_the_two_commands():
    commands = _commands()
    assert commands[:2] == [
        "pip install -e . && python experiments/run.py experiments/quickstart.yaml",
        'pip install -e ".[test]" && python -m pytest',
    ]
    assert os.path.isfile(os.path.join(ROOT, "experiments", "quickstart.yaml"))


def test_ci_runs_exactly_the_readme_test_command():
    script = os.path.join(ROOT, ".ci", "run")
    extract = open(script, encoding="utf-8").read().split("cmd=$(", 1)[1].split(")\n", 1)[0]
    out = subprocess.run(["bash", "-c", extract], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == _commands()[1]
