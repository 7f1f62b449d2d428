"""HTTP plumbing: API routes and their index, the guard, OpenAPI, route switches,
rate limits, the core endpoints, JSON errors and the RFC 3339 time format."""
