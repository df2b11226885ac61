"""The gateway: handlers, the stages around the upstream call, relay and streaming, options, admin."""
