"""Answers of the naturalness study in SQLite: WAL mode, one transaction per answer.

A crash (even SIGKILL) loses at most the answer being sent: each answer is committed before its response.
"""

import secrets
import sqlite3
import threading
import time

SCHEMA = """
CREATE TABLE IF NOT EXISTS participants (
    token TEXT PRIMARY KEY,
    number INTEGER NOT NULL UNIQUE,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    participant TEXT NOT NULL REFERENCES participants(token),
    image TEXT NOT NULL,
    scene INTEGER NOT NULL,
    model TEXT NOT NULL,
    answer TEXT NOT NULL CHECK (answer IN ('real', 'computer')),
    response_ms INTEGER NOT NULL,
    timestamp REAL NOT NULL,
    UNIQUE (participant, image),
    UNIQUE (participant, scene)
);
"""


class DuplicateAnswer(ValueError):
    """The participant already answered this image (or this scene)."""


class AnswerStore:
    """Thread-safe access to the study database at `path` (one connection per thread).

    Args:
        path: str. The SQLite file (created if missing).
    """

    def __init__(self, path):
        self.path = path
        self._local = threading.local()
        self._db().executescript(SCHEMA)

    def _db(self):
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            self._local.db = db
        return db

    def _connect(self):
        return _Transaction(self._db())

    def new_participant(self):
        """A new anonymous token and the participant's number (0, 1, 2, ...), which balances the models."""
        token = secrets.token_urlsafe(16)
        with self._connect() as db:
            number = db.execute("SELECT COALESCE(MAX(number) + 1, 0) FROM participants").fetchone()[0]
            db.execute("INSERT INTO participants VALUES (?, ?, ?)", (token, number, time.time()))
        return token, number

    def participant_number(self, token):
        with self._connect() as db:
            row = db.execute("SELECT number FROM participants WHERE token = ?", (token,)).fetchone()
        return None if row is None else row[0]

    def answered(self, token):
        with self._connect() as db:
            return {row[0] for row in db.execute("SELECT image FROM answers WHERE participant = ?", (token,))}

    def add_answer(self, token, image, scene, model, answer, response_ms):
        try:
            with self._connect() as db:
                db.execute(
                    "INSERT INTO answers (participant, image, scene, model, answer, response_ms, timestamp) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (token, image, scene, model, answer, int(response_ms), time.time()),
                )
        except sqlite3.IntegrityError as e:
            raise DuplicateAnswer(str(e)) from None

    def all_answers(self):
        with self._connect() as db:
            cursor = db.execute(
                "SELECT participant, image, scene, model, answer, response_ms, timestamp FROM answers ORDER BY id"
            )
            names = [c[0] for c in cursor.description]
            return [dict(zip(names, row)) for row in cursor]


class _Transaction:
    """`with` block = one BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error)."""

    def __init__(self, db):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind, value, tb):
        self.db.execute("ROLLBACK" if kind else "COMMIT")
        return False
