"""Names shared by the components: artifact file layout and tf.Example feature keys.

The crawler writes a RawImages artifact; the cleaner reads it and writes Examples plus a
CleaningReport; the trainer, the evaluator and the exported model read the features.
Every name that crosses a component boundary is defined here once.
"""

# RawImages artifact (ImageCrawler output) ------------------------------------------
MANIFEST = "manifest.jsonl"  # one JSON line per URL or file the crawler saw
IMAGES_DIR = "images"  # images/<sha256>: raw bytes, named by content hash, no extension
CRAWL_REPORT = "crawl_report.json"  # per keyword and source: counts and engine errors

# Manifest record keys (the crawler writes them, the cleaner reads them).
M_KEYWORD = "keyword"
M_SOURCE = "source"
M_QUERY = "query"
M_URL = "url"
M_FINAL_URL = "final_url"
M_STATUS = "http_status"
M_BYTES = "bytes"
M_SHA256 = "sha256"
M_CONTENT_TYPE = "content_type"
M_ERROR = "error"
M_PATH = "path"  # relative to the artifact uri; empty when nothing was stored

# CleaningReport artifact (ImageCleaner output) ----------------------------------------
LEDGER = "ledger.jsonl"  # one line per manifest record: outcome, reason, split
REPORT = "report.json"  # the per-class funnel
OUTCOMES = ("kept", "dropped", "duplicate", "ambiguous", "failed")

# Examples (ImageCleaner output, TFX layout Split-train / Split-eval / Split-calibration) -
TRAIN_SPLIT = "train"  # fitting
EVAL_SPLIT = "eval"  # early stopping, the phase-2 choice, the temperature, the Evaluator gate
CALIBRATION_SPLIT = "calibration"  # held out from all of that: ECE and certified thresholds
F_IMAGE = "image/encoded"
F_FORMAT = "image/format"
F_LABEL = "label"
F_LABEL_TEXT = "label/text"
F_SOURCE_URL = "image/source_url"
F_SHA256 = "image/sha256"
F_PHASH = "image/phash"
F_ORIG_WIDTH = "image/original_width"
F_ORIG_HEIGHT = "image/original_height"
F_ORIG_FORMAT = "image/original_format"

# Trainer outputs beside the model (its ModelRun artifact, fn_args.model_run_dir) ---------
HISTORY_JSON = "history.json"  # both phases' curves, the kept phase
CALIBRATION_JSON = "calibration.json"  # temperature, ECE, reliability bins, certificates
RELIABILITY_PNG = "reliability.png"  # before and after temperature scaling
RISK_COVERAGE_PNG = "risk_coverage.png"  # with the certified thresholds

# Inside the Examples artifact, beside the splits: the cleaner's embeddings of the kept
# images (components/embeddings.py), which the Trainer's phase 1 reuses.
EMBEDDINGS_DIR = "embeddings"
