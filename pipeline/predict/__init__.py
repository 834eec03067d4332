"""``keyclass predict``: score a folder with Grad-CAM, write result images and tables."""
