"""ImageCrawler: keywords in, a RawImages artifact out (images by content hash, manifest, report)."""
