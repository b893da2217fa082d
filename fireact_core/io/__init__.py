"""Files in and out: formats, import and export, sources, loss masks, parsing and the data checks."""
