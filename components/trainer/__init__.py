"""The Trainer module: data input, backbones, training phases, export and Grad-CAM."""
