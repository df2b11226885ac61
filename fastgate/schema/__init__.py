"""msgspec Structs for the wire formats fastgate reads and writes."""
