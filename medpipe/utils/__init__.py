"""Small helpers with no heavy imports: filesystem, environment."""
