"""``keyclass report``: one self-contained HTML file per run.

Three layers, each usable alone:

- :mod:`gather`: pure readers of what a run left (ML Metadata, the cleaner's ledger
  and report, TFDV and TFMA outputs, the training history, the results folder), into
  plain dataclasses; a part that is missing is recorded with the reason.
- :mod:`figures` and :mod:`thumbs`: matplotlib figures and bounded image thumbnails,
  as inline ``data:`` URIs.
- :mod:`render`: the Jinja2 templates (package data under ``templates/``) turn the
  gathered data into one HTML file with no script and no external reference.

:func:`keyclass.pipeline.report.write.write_report` runs all three.
"""
