"""Wire encodings of log events. Pure: no I/O."""
