"""Build to lossless: still regions are refined to pixel-exact tiles that clients verify."""
