"""ImageCleaner: the TFX component that turns crawled images into clean training Examples.

Pure parts: :mod:`decode` (bytes -> upright RGB), :mod:`dedup` (near-duplicate search),
:mod:`funnel` (the global decisions and the report). Beam: :mod:`stages`. TFX:
:mod:`spec`, :mod:`component`, :mod:`executor`.
"""
