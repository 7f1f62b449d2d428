"""What the daemon measures about itself: the Prometheus exporter, request metrics."""
