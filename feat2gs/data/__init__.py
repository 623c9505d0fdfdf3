"""Dataset layout, split file, image loading, COLMAP text I/O and the synthetic scene generator."""
