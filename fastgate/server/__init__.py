"""The HTTP side: fastgate's own HTTP/1.1 server and upstream client, and the handlers."""
