"""An atomic filesystem Pusher: TFX's Pusher with a version directory that appears whole."""
