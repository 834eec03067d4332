"""keyclass's own TFX artifact types."""

from tfx.types.artifact import Artifact


class RawImages(Artifact):
    """Images as downloaded or copied, plus the crawl manifest (see components.layout)."""

    TYPE_NAME = "keyclass.RawImages"


class CleaningReport(Artifact):
    """The cleaner's ledger (one line per input) and funnel report."""

    TYPE_NAME = "keyclass.CleaningReport"
