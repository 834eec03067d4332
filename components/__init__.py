"""keyclass's custom TFX components and the Trainer module."""
