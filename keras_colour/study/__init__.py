"""The naturalness study of the thesis (Table 4) and a colourise page, as a small web app.

`create` builds a self-contained study folder from run folders, `store` keeps the answers in SQLite,
`app` serves the study and the colourise page (Flask, run by waitress), `results` computes naturalness
with Wilson intervals beside the thesis's Table 4.
"""
