"""Live events: the in-process bus and the Server-Sent Events stream."""
