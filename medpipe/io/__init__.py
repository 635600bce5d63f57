"""Readers for the file formats medpipe meets: Pascal VOC XML, image headers."""
